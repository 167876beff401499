import Foundation

extension DataComparisonResult {
  /// The human-readable section of `qdiff`'s table.
  public func table() -> String {
    var out = "data: \(text)  (\(windows) windows of up to \(context) tokens, "
    out += tokenization == "shared" ? "same ids for both models)\n" : "each model with its own tokenizer)\n"
    var sides = TextTable(
      headers: ["model", "perplexity", "bits/byte", "scored tokens", "layers", "hidden"],
      alignments: [.left, .right, .right, .right, .right, .right])
    for (label, side) in [("old", old), ("new", new)] {
      sides.append([
        label, formatFixed(side.perplexity, 4), side.bitsPerByte.map { formatFixed($0, 4) } ?? "-",
        String(side.scoredTokens), String(side.layers), String(side.hiddenSize),
      ])
    }
    out += sides.render(indent: "  ")
    if let meanKL, let top1Agreement, let comparedPositions {
      out += "  next-token distributions over \(comparedPositions) positions: mean KL(old || new) "
      out += "\(scientific(meanKL)) nats (max \(scientific(maxKL ?? 0))), top-1 agreement "
      out += "\(formatFixed(100 * top1Agreement, 2))%\n"
    } else if let tokenMetricsNote {
      out += "  no KL or top-1 agreement: \(tokenMetricsNote)\n"
    }
    if !layers.isEmpty {
      let values = layers.compactMap(\.cosine)
      if let lowest = layers.min(by: { ($0.cosine ?? .infinity) < ($1.cosine ?? .infinity) }), !values.isEmpty {
        out += "  hidden-state cosine per layer (mean over tokens): mean "
        out += "\(formatFixed(values.reduce(0, +) / Double(values.count), 6)), lowest "
        out += "\(formatFixed(lowest.cosine ?? .nan, 6)) at layer \(lowest.new)\n"
      }
      var table = TextTable(headers: ["new", "old", "cosine", "cka"], alignments: [.right, .right, .right, .right])
      let cka = layerSimilarity?.ckaMatrix
      for layer in layers {
        let value = cka.flatMap { m in
          layer.old < m.rows && layer.new < m.columns && m[layer.old, layer.new].isFinite
            ? formatFixed(m[layer.old, layer.new], 4) : nil
        }
        table.append([
          String(layer.new), String(layer.old), layer.cosine.map { formatFixed($0, 6) } ?? "-", value ?? "-",
        ])
      }
      out += table.render(indent: "  ")
    } else if let layersNote {
      out += "  no hidden-state cosine: \(layersNote)\n"
    }
    if let layerSimilarity {
      out += "  activation CKA over \(activationExamples) examples; layer mapping (new <- old): "
      out += layerSimilarity.mapping.map { "\($0.new)<-\($0.old.map(String.init) ?? "-")" }.joined(separator: " ")
      out += "\n"
    }
    out += "  \(same ? "same predictions" : "different predictions") (\(formatFixed(seconds, 1)) s)\n"
    return out
  }

  /// `metric`, `value` lines for the TSV output's data section.
  public func tsvLines() -> [(String, String)] {
    func full(_ value: Double?) -> String { value.map { "\($0)" } ?? "" }
    var lines: [(String, String)] = [
      ("tokenization", tokenization), ("context", String(context)), ("windows", String(windows)),
    ]
    for (label, side) in [("old", old), ("new", new)] {
      lines += [
        ("\(label)_perplexity", full(side.perplexity)), ("\(label)_mean_nll", full(side.meanNLL)),
        ("\(label)_bits_per_byte", full(side.bitsPerByte)),
        ("\(label)_scored_tokens", String(side.scoredTokens)),
      ]
    }
    lines += [
      ("compared_positions", comparedPositions.map(String.init) ?? ""), ("mean_kl", full(meanKL)),
      ("max_kl", full(maxKL)), ("top1_agreement", full(top1Agreement)),
      ("activation_examples", String(activationExamples)), ("same", same ? "true" : "false"),
    ]
    for layer in layers {
      lines.append(("layer_cosine.\(layer.new).\(layer.old)", full(layer.cosine)))
    }
    return lines
  }
}

/// Four significant digits in scientific notation, 0 as `0`.
private func scientific(_ value: Double) -> String {
  if value == 0 { return "0" }
  guard value.isFinite else { return "\(value)" }
  let exponent = Int(log10(abs(value)).rounded(.down))
  return formatFixed(value / pow(10, Double(exponent)), 3) + "e" + String(exponent)
}
