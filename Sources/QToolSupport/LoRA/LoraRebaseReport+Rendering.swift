import Foundation
import QCompute

extension LoraRebaseReport {
  /// The report as pretty, key-sorted JSON (fields in `Formats/lora-rebase-report.md`).
  public func json() throws -> String {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
    encoder.nonConformingFloatEncodingStrategy = .convertToString(
      positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
    return String(decoding: try encoder.encode(self), as: UTF8.self) + "\n"
  }

  /// The report as text tables for people.
  public func table() -> String {
    var out = "lora-rebase: \(adapter) (r \(rank), alpha \(formatFixed(alpha, 1)))\n"
    out += "  old base: \(oldBase)\n  new base: \(newBase)\n"
    if let output { out += "  output:   \(output)\n" }
    out += "  head transform: \(headTransform)\n"
    out += "  hidden transfer: \(transfer.kind), \(transfer.oldHidden) -> \(transfer.newHidden)"
    if let shared = transfer.sharedTokens { out += ", \(shared) shared tokens" }
    out += "\n\nLayer map (\(layerSource)"
    if let layerData {
      out += " on \(layerData.text): \(layerData.tokenization) tokenization, \(layerData.windows) windows, \(layerData.examples) examples"
    }
    out += "):\n"
    var layerTable = TextTable(headers: ["new layer", "old layer"], alignments: [.right, .right])
    for (newLayer, oldLayer) in layers.enumerated() {
      layerTable.append([String(newLayer), oldLayer.map(String.init) ?? "-"])
    }
    out += layerTable.render(indent: "  ")
    if !heads.isEmpty {
      out += "\nHead maps (new head <- old head):\n"
      var headTable = TextTable(
        headers: ["new layer", "old layer", "similarity", "heads"], alignments: [.right, .right, .right, .left])
      for entry in heads {
        headTable.append([
          String(entry.newLayer), String(entry.oldLayer),
          entry.similarity.map { formatFixed($0, 3) } ?? "file",
          entry.newToOld.map { $0.map(String.init) ?? "-" }.joined(separator: " "),
        ])
      }
      out += headTable.render(indent: "  ")
    }
    out += "\nModules (norm = ||scale * B A||_F):\n"
    var moduleTable = TextTable(
      headers: ["new layer", "old layer", "module", "norm before", "norm after", "kept"],
      alignments: [.right, .right, .left, .right, .right, .right])
    for module in modules {
      moduleTable.append([
        String(module.newLayer), String(module.oldLayer), module.module,
        String(format: "%.4g", module.normBefore), String(format: "%.4g", module.normAfter),
        formatFixed(module.kept, 3),
      ])
    }
    out += moduleTable.render(indent: "  ")
    if !dropped.isEmpty {
      out += "\nDropped (\(dropped.count)): " + dropped.joined(separator: ", ") + "\n"
    }
    return out
  }

  /// The CKA heatmap with the chosen layer path, for `--plot`.
  public func plot(similarity: LayerSimilarity) -> String {
    let path = layers.enumerated().compactMap { newLayer, oldLayer in
      oldLayer.map { (row: $0, column: newLayer) }
    }
    return SVGPlot.heatmap(
      similarity.ckaMatrix,
      title: "\(similarity.source == "weights" ? "Weight" : "Activation") CKA and layer map", rowTitle: "old layer", columnTitle: "new layer",
      path: path)
  }
}
