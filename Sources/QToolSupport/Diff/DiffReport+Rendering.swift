import Foundation

extension DiffReport {
  /// The JSON form: one object. A metric that is NaN (a non-finite pair) is `null`.
  public func json() throws -> String {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
    return String(decoding: try encoder.encode(self), as: UTF8.self) + "\n"
  }

  /// One JSON object per tensor and line.
  public func jsonLines() throws -> String {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
    var out = ""
    for tensor in tensors {
      out += String(decoding: try encoder.encode(tensor), as: UTF8.self) + "\n"
    }
    if let data {
      struct DataLine: Encodable { var data: DataComparisonResult }
      out += String(decoding: try encoder.encode(DataLine(data: data)), as: UTF8.self) + "\n"
    }
    if let images {
      struct ImagesLine: Encodable { var images: ImageComparisonResult }
      out += String(decoding: try encoder.encode(ImagesLine(images: images)), as: UTF8.self) + "\n"
    }
    return out
  }

  static let tsvColumns = [
    "name", "status", "renamed_by", "old_name", "new_name", "old_dtype", "new_dtype", "old_shape",
    "new_shape", "parameters", "component", "layer", "within_tolerance", "bit_identical",
    "relative_l2", "cosine", "max_abs_diff", "snr_db", "non_finite", "bits_per_weight",
    "old_bits_per_weight",
  ]

  /// A header line, then one line per tensor; absent values are empty.
  public func tsv() -> String {
    var out = Self.tsvColumns.joined(separator: "\t") + "\n"
    for t in tensors {
      let cells: [String] = [
        t.name, t.status.rawValue, t.renamedBy ?? "", t.oldName ?? "", t.newName ?? "",
        t.oldDType ?? "", t.newDType ?? "", t.oldShape.map(dimensions) ?? "",
        t.newShape.map(dimensions) ?? "", String(t.parameters), t.component, t.layer ?? "",
        t.withinTolerance.map { $0 ? "true" : "false" } ?? "",
        t.bitIdentical.map { $0 ? "true" : "false" } ?? "",
        full(t.relativeL2), full(t.cosine), full(t.maxAbsDiff), full(t.snrDB),
        t.nonFinite.map(String.init) ?? "", full(t.bitsPerWeight), full(t.oldBitsPerWeight),
      ]
      out += cells.map { $0.replacingOccurrences(of: "\t", with: " ") }.joined(separator: "\t") + "\n"
    }
    let metrics = (data?.tsvLines() ?? []) + (images?.tsvLines() ?? [])
    if !metrics.isEmpty {
      out += "\nmetric\tvalue\n"
      for (metric, value) in metrics {
        out += "\(metric.replacingOccurrences(of: "\t", with: " "))\t\(value)\n"
      }
    }
    return out
  }

  /// The human-readable form: differences only, worst first.
  public func table() -> String {
    var out = ""
    for (label, side) in [("old", old), ("new", new)] {
      out += "\(label): \(side.path)  (\(side.pack ? "qpack" : side.format), \(side.tensors) tensors, "
      out += "\(humanCount(side.parameters)) parameters, \(humanBytes(side.bytes))"
      if let bpw = side.bitsPerWeight { out += ", \(formatFixed(bpw, 2)) bits/weight" }
      out += ")\n"
    }
    let counts = TensorStatus.allCases.compactMap { status -> String? in
      let n = summary.counts[status.rawValue] ?? 0
      return n > 0 ? "\(n) \(status.rawValue)" : nil
    }
    out += "tensors: " + (counts.isEmpty ? "none" : counts.joined(separator: ", "))
    if let r = summary.relativeL2, summary.compared > 0 {
      out += "; over \(summary.compared) compared: relative L2 \(brief(r))"
      if let snr = summary.snrDB { out += ", SNR \(formatFixed(snr, 1)) dB" }
    }
    out += "\n"
    out += same ? "same" : "different"
    out += tolerance > 0 ? " (tolerance \(brief(tolerance)))\n" : " (bit for bit)\n"

    if !config.isEmpty {
      out += "\nconfig\n"
      for change in config { out += "  \(change.text)\n" }
    }
    if !layerMoves.isEmpty {
      out += "\nlayers renumbered\n"
      for move in layerMoves { out += "  \(move.stack).\(move.old) -> \(move.stack).\(move.new)\n" }
    }
    if components.count > 1 || (components.first.map { $0.differing > 0 } ?? false) {
      out += "\ncomponents\n" + groupTable(components, header: "component")
    }
    if layers.contains(where: { $0.differing > 0 }) {
      out += "\nlayers\n" + groupTable(layers, header: "layer")
    }
    if let layerSimilarity { out += "\n" + layerSimilarity.table() }
    if let data { out += "\n" + data.table() }
    if let images { out += "\n" + images.table() }

    // Worst first: NaN (a non-finite pair), then an unbounded error (absent), then the largest.
    func severity(_ t: TensorDiff) -> (Int, Double) {
      guard let r = t.relativeL2 else { return (1, 0) }
      return r.isNaN ? (2, 0) : (0, r)
    }
    let shown = tensors.filter { $0.status != .equal }.sorted { a, b in
      if a.status != b.status { return a.status < b.status }
      let (x, y) = (severity(a), severity(b))
      return x.0 != y.0 ? x.0 > y.0 : x.1 > y.1
    }
    guard !shown.isEmpty else { return out }
    let packed = old.pack || new.pack
    var headers = ["status", "name", "dtype", "shape", "rel_l2", "cosine", "max_abs", "snr_db"]
    var alignments: [TextTable.Alignment] = [.left, .left, .left, .left, .right, .right, .right, .right]
    if packed {
      headers.append("bits/w")
      alignments.append(.right)
    }
    var table = TextTable(headers: headers, alignments: alignments)
    for t in shown {
      let name = t.status == .renamed ? "\(t.oldName ?? "") -> \(t.newName ?? "")" : t.name
      let dtype = t.oldDType == t.newDType || t.oldDType == nil || t.newDType == nil
        ? (t.newDType ?? t.oldDType ?? "") : "\(t.oldDType ?? "") -> \(t.newDType ?? "")"
      let shape = t.oldShape == t.newShape || t.oldShape == nil || t.newShape == nil
        ? shapeText(t.newShape ?? t.oldShape ?? [])
        : "\(shapeText(t.oldShape ?? [])) -> \(shapeText(t.newShape ?? []))"
      var row = [
        t.status.rawValue, name, dtype, shape, t.relativeL2.map(brief) ?? "-",
        t.cosine.map { formatFixed($0, 6) } ?? "-", t.maxAbsDiff.map(brief) ?? "-",
        t.snrDB.map { formatFixed($0, 1) } ?? "-",
      ]
      if packed { row.append((t.bitsPerWeight ?? t.oldBitsPerWeight).map { formatFixed($0, 2) } ?? "-") }
      table.append(row)
    }
    out += "\ntensors (worst first)\n" + table.render(indent: "  ")
    return out
  }

  private func groupTable(_ groups: [GroupEntry], header: String) -> String {
    var table = TextTable(
      headers: [header, "tensors", "differing", "rel_l2", "cosine", "max_abs", "snr_db"],
      alignments: [.left, .right, .right, .right, .right, .right, .right])
    for g in groups {
      table.append([
        g.name, String(g.tensors), String(g.differing), g.relativeL2.map(brief) ?? "-",
        g.cosine.map { formatFixed($0, 6) } ?? "-", g.maxAbsDiff.map(brief) ?? "-",
        g.snrDB.map { formatFixed($0, 1) } ?? "-",
      ])
    }
    return table.render(indent: "  ")
  }
}

private func dimensions(_ shape: [Int]) -> String {
  shape.map(String.init).joined(separator: ",")
}

/// Full precision for scripts: the shortest text that reads back as the same Double.
private func full(_ value: Double?) -> String {
  value.map { "\($0)" } ?? ""
}

/// Four significant digits for people.
private func brief(_ value: Double) -> String {
  if value == 0 { return "0" }
  if !value.isFinite { return "\(value)" }
  let magnitude = abs(value)
  if magnitude >= 1e-3 && magnitude < 1e5 {
    let digits = max(0, 3 - Int(log10(magnitude).rounded(.down)))
    return formatFixed(value, min(digits, 6))
  }
  let exponent = Int(log10(magnitude).rounded(.down))
  return formatFixed(value / pow(10, Double(exponent)), 3) + "e" + String(exponent)
}
