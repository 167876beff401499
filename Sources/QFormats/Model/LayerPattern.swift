/// Collapsing per-layer tensor names into one line per repeated pattern.
///
/// Every dotted segment made only of digits counts as an index and becomes `#`, so
/// `model.layers.17.mlp.down_proj.weight` becomes `model.layers.#.mlp.down_proj.weight`,
/// `visual.blocks.3.mlp.fc1.weight` becomes `visual.blocks.#.mlp.fc1.weight` and
/// `visual.merger.mlp.0.weight` becomes `visual.merger.mlp.#.weight`. Numbered submodules
/// that are not layers (`mlp.0`, `conv.1`) collapse too: they are as repetitive to a reader.
public enum LayerPattern {
  /// Names that share a pattern.
  public struct Group: Sendable, Hashable {
    /// The shared name with each index segment replaced by `#`.
    public var pattern: String
    /// The member names, in input order.
    public var names: [String]
    /// For each member, the numbers its `#` segments stand for, left to right.
    public var indices: [[Int]]

    /// How many names share the pattern.
    public var count: Int { names.count }
    /// Whether the pattern has an index at all (a plain name forms a group of its own).
    public var isIndexed: Bool { indices.first.map { !$0.isEmpty } ?? false }
    /// The distinct values of the first index, sorted: the layer numbers for per-layer names.
    public var layerIndices: [Int] {
      Array(Set(indices.compactMap(\.first))).sorted()
    }
    /// The first-index values as ranges, e.g. `0-11, 13`.
    public var layerRangeDescription: String {
      LayerPattern.describeRanges(layerIndices)
    }
  }

  /// The pattern of one name and the numbers its `#` segments replaced.
  public static func pattern(of name: String) -> (pattern: String, indices: [Int]) {
    var indices: [Int] = []
    let segments = name.split(separator: ".", omittingEmptySubsequences: false).map {
      segment -> Substring in
      if !segment.isEmpty, segment.allSatisfy({ $0.isASCII && $0.isNumber }),
        let value = Int(segment)
      {
        indices.append(value)
        return "#"
      }
      return segment
    }
    return (segments.joined(separator: "."), indices)
  }

  /// Groups names by pattern, groups in order of first appearance.
  public static func collapse(_ names: [String]) -> [Group] {
    var groups: [Group] = []
    var position: [String: Int] = [:]
    for name in names {
      let (pattern, indices) = pattern(of: name)
      if let at = position[pattern] {
        groups[at].names.append(name)
        groups[at].indices.append(indices)
      } else {
        position[pattern] = groups.count
        groups.append(Group(pattern: pattern, names: [name], indices: [indices]))
      }
    }
    return groups
  }

  /// Sorted distinct integers as comma-separated runs: `[0, 1, 2, 5]` gives `0-2, 5`.
  public static func describeRanges(_ sorted: [Int]) -> String {
    var parts: [String] = []
    var i = 0
    while i < sorted.count {
      var j = i
      while j + 1 < sorted.count, sorted[j + 1] == sorted[j] + 1 { j += 1 }
      parts.append(i == j ? "\(sorted[i])" : "\(sorted[i])-\(sorted[j])")
      i = j + 1
    }
    return parts.joined(separator: ", ")
  }
}
