import Foundation

extension InspectionReport {
  /// The JSON form of several reports: an array, one object per input, always.
  public static func json(_ reports: [InspectionReport]) throws -> String {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
    return String(decoding: try encoder.encode(reports), as: UTF8.self) + "\n"
  }

  /// One JSON object per tensor and line, each carrying the input's path.
  public func jsonLines() throws -> String {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
    var out = ""
    for tensor in tensors {
      let line = JSONLine(path: path, tensor: tensor)
      out += String(decoding: try encoder.encode(line), as: UTF8.self) + "\n"
    }
    return out
  }

  /// The header line of the TSV form; the columns after `component` appear with `--stats`.
  public static func tsvHeader(withStats: Bool) -> String {
    var columns = ["path", "name", "dtype", "shape", "parameters", "bytes", "component"]
    if withStats {
      columns += ["count", "min", "max", "mean", "std", "absmax", "zero_fraction", "nan", "inf"]
    }
    return columns.joined(separator: "\t") + "\n"
  }

  /// One TSV row per tensor: shapes as comma-separated dimensions, absent values empty.
  public func tsvRows(withStats: Bool) -> String {
    var out = ""
    for t in tensors {
      var cells = [
        tsvEscape(path), tsvEscape(t.name), t.dtype, t.shape.map(String.init).joined(separator: ","),
        String(t.parameters), String(t.bytes), t.component,
      ]
      if withStats {
        let s = t.stats
        cells += [
          s.map { String($0.count) } ?? "", number(s?.min), number(s?.max), number(s?.mean),
          number(s?.std), number(s?.absmax), number(s?.zeroFraction),
          s.map { String($0.nan) } ?? "", s.map { String($0.inf) } ?? "",
        ]
      }
      out += cells.joined(separator: "\t") + "\n"
    }
    return out
  }

  /// The human-readable form.
  public func table(withStats: Bool) -> String {
    var out = "\(path)  (\(format))\n"
    if let architecture {
      out += "architecture: \(architecture.family) (\(architecture.kind))"
      let keys = architecture.parameters.keys.sorted()
      if !keys.isEmpty {
        out += "  " + keys.map { "\($0)=\(architecture.parameters[$0] ?? 0)" }.joined(separator: " ")
      }
      out += "\n"
    }
    out += "total: \(totals.tensors) tensors, \(humanCount(totals.parameters)) parameters "
    out += "(\(totals.parameters)), \(humanBytes(totals.bytes))"
    if let bpw = totals.bitsPerWeight { out += ", \(formatFixed(bpw, 2)) bits/weight" }
    out += "\n"

    if components.count > 1 {
      out += "\ncomponents\n"
      var table = TextTable(
        headers: ["component", "tensors", "parameters", "bytes"],
        alignments: [.left, .right, .right, .right])
      for c in components {
        table.append([c.component, String(c.tensors), humanCount(c.parameters), humanBytes(c.bytes)])
      }
      out += table.render(indent: "  ")
    }

    if layerPatterns.contains(where: { $0.count > 1 }) {
      out += "\nlayers\n"
      var table = TextTable(
        headers: ["pattern", "count", "dtype", "shape", "parameters"],
        alignments: [.left, .right, .left, .left, .right])
      for p in layerPatterns {
        table.append([
          p.pattern, "x\(p.count)", p.dtype ?? "mixed", p.shape.map(shapeText) ?? "mixed",
          humanCount(p.parameters),
        ])
      }
      out += table.render(indent: "  ")
    }

    out += "\ntensors\n"
    var headers = ["name", "dtype", "shape", "parameters", "bytes"]
    var alignments: [TextTable.Alignment] = [.left, .left, .left, .right, .right]
    let isPack = tensors.contains { $0.bits != nil }
    if isPack {
      headers += ["quantization", "bits/weight"]
      alignments += [.left, .right]
    }
    if withStats {
      headers += ["min", "max", "mean", "std", "absmax", "zeros", "nan", "inf"]
      alignments += Array(repeating: .right, count: 8)
    }
    var table = TextTable(headers: headers, alignments: alignments)
    for t in tensors {
      var row = [t.name, t.dtype, shapeText(t.shape), String(t.parameters), String(t.bytes)]
      if isPack {
        if let bits = t.bits {
          let group = t.groupSize.map { "g\($0)" } ?? ""
          row.append("\(bits)-bit \(group) \(t.grid ?? "") \(t.method ?? "")")
        } else {
          row.append("kept")
        }
        row.append(t.bitsPerWeight.map { formatFixed($0, 2) } ?? formatFixed(8 * Double(t.bytes) / Double(max(t.parameters, 1)), 2))
      }
      if withStats {
        let s = t.stats
        row += [
          short(s?.min), short(s?.max), short(s?.mean), short(s?.std), short(s?.absmax),
          s?.zeroFraction.map { formatFixed($0 * 100, 1) + "%" } ?? "-",
          s.map { String($0.nan) } ?? "-", s.map { String($0.inf) } ?? "-",
        ]
      }
      table.append(row)
    }
    out += table.render(indent: "  ")
    if !skipped.isEmpty {
      out += "\nskipped\n"
      for s in skipped { out += "  \(s.name): \(s.reason)\n" }
    }
    if perplexity != nil || generation != nil { out += "\n" + evaluationText(withPath: false) }
    return out
  }

  /// The perplexity and generation results alone: what `--perplexity` and `--generate` print
  /// in the table format, without the tensor table before them.
  public func evaluationText(withPath: Bool = true) -> String {
    var parts: [String] = []
    if let p = perplexity {
      let scoring = p.scoring == .secondHalf ? ", second half of each scored" : " (stride \(p.stride))"
      parts.append(
        "perplexity \(formatFixed(p.perplexity, 3)) on \(p.text): \(p.scoredTokens) tokens scored "
          + "in \(p.windows) windows of \(p.context)\(scoring), \(formatFixed(p.seconds, 2)) s\n")
    }
    if let g = generation {
      var out = "generation (\(g.tokens) tokens, \(formatFixed(g.seconds, 2)) s"
      if let prompt = g.promptTokensPerSecond, let promptTokens = g.promptTokens {
        out += "; prompt \(promptTokens) tokens at \(formatFixed(prompt, 1)) tokens/s"
      }
      if let rate = g.generationTokensPerSecond { out += "; generation \(formatFixed(rate, 1)) tokens/s" }
      out += ")\n"
      out += "  prompt: \(g.prompt)\n  completion: \(g.completion)\n"
      parts.append(out)
    }
    return (withPath ? "\(path)\n" : "") + parts.joined(separator: "\n")
  }
}

private struct JSONLine: Encodable {
  var path: String
  var tensor: TensorEntry

  enum CodingKeys: String, CodingKey {
    case path, name, dtype, shape, parameters, bytes, component, stats, bits
    case groupSize = "group_size"
    case grid, method
    case bitsPerWeight = "bits_per_weight"
  }

  func encode(to encoder: any Encoder) throws {
    var c = encoder.container(keyedBy: CodingKeys.self)
    try c.encode(path, forKey: .path)
    try c.encode(tensor.name, forKey: .name)
    try c.encode(tensor.dtype, forKey: .dtype)
    try c.encode(tensor.shape, forKey: .shape)
    try c.encode(tensor.parameters, forKey: .parameters)
    try c.encode(tensor.bytes, forKey: .bytes)
    try c.encode(tensor.component, forKey: .component)
    try c.encodeIfPresent(tensor.stats, forKey: .stats)
    try c.encodeIfPresent(tensor.bits, forKey: .bits)
    try c.encodeIfPresent(tensor.groupSize, forKey: .groupSize)
    try c.encodeIfPresent(tensor.grid, forKey: .grid)
    try c.encodeIfPresent(tensor.method, forKey: .method)
    try c.encodeIfPresent(tensor.bitsPerWeight, forKey: .bitsPerWeight)
  }
}

func shapeText(_ shape: [Int]) -> String {
  "[" + shape.map(String.init).joined(separator: ", ") + "]"
}

private func tsvEscape(_ s: String) -> String {
  s.replacingOccurrences(of: "\t", with: " ").replacingOccurrences(of: "\n", with: " ")
}

/// Full precision for scripts: the shortest text that reads back as the same Double.
private func number(_ value: Double?) -> String {
  guard let value else { return "" }
  return "\(value)"
}

/// Four significant digits for people.
private func short(_ value: Double?) -> String {
  guard let value else { return "-" }
  if value == 0 { return "0" }
  let magnitude = abs(value)
  if magnitude >= 1e-3 && magnitude < 1e5 {
    let digits = max(0, 3 - Int(log10(magnitude).rounded(.down)))
    return formatFixed(value, min(digits, 6))
  }
  let exponent = Int(log10(magnitude).rounded(.down))
  let mantissa = value / pow(10, Double(exponent))
  return formatFixed(mantissa, 3) + "e" + String(exponent)
}
