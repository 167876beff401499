extension LayerSimilarity {
  /// The human-readable section of `qdiff`'s table: the layer mapping with its CKA, then each
  /// mapped pair's head mapping.
  public func table() -> String {
    var out = "layer similarity (linear CKA from \(source)"
    switch transfer.kind {
    case "identity": out += ", same hidden basis)\n"
    default:
      out += ", hidden \(old.hiddenSize) -> \(new.hiddenSize) through \(transfer.sharedTokens ?? 0) shared tokens)\n"
    }
    out += "  old: \(old.layers) layers, \(old.heads) heads, \(old.kvHeads) kv heads; "
    out += "new: \(new.layers) layers, \(new.heads) heads, \(new.kvHeads) kv heads\n"
    let headsByNew = Dictionary(heads.map { ($0.newLayer, $0) }, uniquingKeysWith: { a, _ in a })
    var table = TextTable(
      headers: ["new", "old", "cka", "heads (new <- old)", "head sim"],
      alignments: [.right, .right, .right, .left, .right])
    for pair in mapping {
      let headPair = headsByNew[pair.new]
      let headText = headPair.map { h in
        h.newToOld.map { $0.map(String.init) ?? "-" }.joined(separator: " ")
      } ?? ""
      let mean = headPair.map { h -> String in
        let assigned = h.newToOld.compactMap { $0 }.count
        return assigned > 0 ? formatFixed(h.totalSimilarity / Double(assigned), 3) : "-"
      } ?? ""
      table.append([
        String(pair.new), pair.old.map(String.init) ?? "-", pair.cka.map { formatFixed($0, 3) } ?? "-",
        headText, mean,
      ])
    }
    out += table.render(indent: "  ")
    return out
  }
}
