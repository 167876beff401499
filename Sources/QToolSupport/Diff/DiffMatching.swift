import QFormats

/// Which old tensor is compared with which new one.
///
/// Names present on both sides pair up, except where a layer renumbering explains the content
/// better: a whole layer of the old checkpoint that reappears, tensor for tensor with the same
/// content, under another index (an offset, an inserted or removed layer, a permutation). Of the
/// names left over, pairs whose names differ only by a prefix (`model.` against
/// `language_model.model.`) and whose shapes agree are renames; the rest are removed or added.
public struct DiffMatching: Sendable, Equatable {
  public enum Reason: String, Sendable, Equatable {
    case sameName = "same-name"
    case layerRenumbering = "layer-renumbering"
    case prefix
  }

  public struct Pair: Sendable, Equatable {
    public var old: TensorInfo
    public var new: TensorInfo
    public var reason: Reason
  }

  /// A layer of one stack that moved: `stack` is the name up to the index (`model.layers`).
  public struct LayerMove: Sendable, Equatable, Codable {
    public var stack: String
    public var old: Int
    public var new: Int
  }

  /// Pairs, in the old checkpoint's order.
  public var pairs: [Pair]
  public var removed: [TensorInfo]
  public var added: [TensorInfo]
  /// Layers that moved, by stack and old index.
  public var layerMoves: [LayerMove]

  /// Matches names, using content hashes to detect moved layers.
  ///
  /// - Parameter hashes: content hashes of the per-layer tensors, keyed by side and name
  ///   (`oldHashes`, `newHashes`); tensors without a hash never count as moved.
  public static func match(
    old: [TensorInfo], new: [TensorInfo], oldHashes: [String: UInt64], newHashes: [String: UInt64]
  ) -> DiffMatching {
    let newByName = Dictionary(new.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
    var claimedNew: Set<String> = []
    var pairOf: [String: Pair] = [:]

    let moves = layerMoves(old: old, new: new, oldHashes: oldHashes, newHashes: newHashes)
    if !moves.isEmpty {
      let target = Dictionary(
        moves.map { (LayerKey(stack: $0.stack, index: $0.old), $0.new) }, uniquingKeysWith: { a, _ in a })
      for info in old {
        guard let place = LayerPlace(info.name), let to = target[place.key] else { continue }
        let name = place.renamed(to: to)
        if let partner = newByName[name], !claimedNew.contains(name) {
          claimedNew.insert(name)
          pairOf[info.name] = Pair(old: info, new: partner, reason: .layerRenumbering)
        }
      }
    }
    for info in old where pairOf[info.name] == nil {
      if let partner = newByName[info.name], !claimedNew.contains(info.name) {
        claimedNew.insert(info.name)
        pairOf[info.name] = Pair(old: info, new: partner, reason: .sameName)
      }
    }
    let removedBefore = old.filter { pairOf[$0.name] == nil }
    let addedBefore = new.filter { !claimedNew.contains($0.name) }
    for (oldInfo, newInfo) in prefixRenames(removed: removedBefore, added: addedBefore) {
      claimedNew.insert(newInfo.name)
      pairOf[oldInfo.name] = Pair(old: oldInfo, new: newInfo, reason: .prefix)
    }
    return DiffMatching(
      pairs: old.compactMap { pairOf[$0.name] },
      removed: old.filter { pairOf[$0.name] == nil },
      added: new.filter { !claimedNew.contains($0.name) },
      layerMoves: moves)
  }

  // MARK: Layers

  struct LayerKey: Hashable {
    var stack: String
    var index: Int
  }

  /// Where a name sits: the segments before its first index, the index, the segments after.
  struct LayerPlace {
    var stack: String
    var index: Int
    var member: String

    init?(_ name: String) {
      let segments = name.split(separator: ".", omittingEmptySubsequences: false)
      guard
        let position = segments.firstIndex(where: { s in
          !s.isEmpty && s.allSatisfy { $0.isASCII && $0.isNumber }
        }), let index = Int(segments[position])
      else { return nil }
      stack = segments[..<position].joined(separator: ".")
      self.index = index
      member = segments[(position + 1)...].joined(separator: ".")
    }

    var key: LayerKey { LayerKey(stack: stack, index: index) }

    func renamed(to index: Int) -> String {
      [stack, String(index), member].filter { !$0.isEmpty }.joined(separator: ".")
    }
  }

  private struct Member: Hashable {
    var dtype: DType
    var shape: [Int]
    var hash: UInt64
  }

  /// Old layers whose content sits, more than half of it and better than at the same index,
  /// under another index of the same stack; each new layer takes at most one old layer.
  static func layerMoves(
    old: [TensorInfo], new: [TensorInfo], oldHashes: [String: UInt64], newHashes: [String: UInt64]
  ) -> [LayerMove] {
    func layers(_ tensors: [TensorInfo], _ hashes: [String: UInt64]) -> [LayerKey: [String: Member]] {
      var out: [LayerKey: [String: Member]] = [:]
      for info in tensors {
        guard let place = LayerPlace(info.name) else { continue }
        let member = hashes[info.name].map { Member(dtype: info.dtype, shape: info.shape, hash: $0) }
        if let member { out[place.key, default: [:]][place.member] = member }
      }
      return out
    }
    let oldLayers = layers(old, oldHashes)
    let newLayers = layers(new, newHashes)
    func score(_ a: [String: Member], _ b: [String: Member]?) -> Int {
      guard let b else { return 0 }
      return a.reduce(0) { $0 + (b[$1.key] == $1.value ? 1 : 0) }
    }
    var candidates: [(score: Int, old: LayerKey, new: LayerKey)] = []
    var settled: Set<LayerKey> = []
    for (key, members) in oldLayers {
      let here = score(members, newLayers[key])
      if here == members.count, newLayers[key]?.count == members.count {
        settled.insert(key)
        continue
      }
      for (other, otherMembers) in newLayers where other.stack == key.stack && other.index != key.index {
        let s = score(members, otherMembers)
        if s > here, 2 * s > members.count { candidates.append((s, key, other)) }
      }
    }
    candidates.sort {
      ($0.score, $1.old.stack, $1.old.index, $1.new.index) > ($1.score, $0.old.stack, $0.old.index, $0.new.index)
    }
    var usedOld: Set<LayerKey> = []
    var usedNew: Set<LayerKey> = settled
    var moves: [LayerMove] = []
    for c in candidates where !usedOld.contains(c.old) && !usedNew.contains(c.new) {
      usedOld.insert(c.old)
      usedNew.insert(c.new)
      moves.append(LayerMove(stack: c.old.stack, old: c.old.index, new: c.new.index))
    }
    return moves.sorted { ($0.stack, $0.old) < ($1.stack, $1.old) }
  }

  // MARK: Prefixes

  /// Removed and added names that share their longest dotted suffix (two segments at least) and
  /// their shape, where the prefixes differ by more than layer indices; the prefix pair that
  /// explains the most names wins ties. A pair of prefixes must be related, one's segments all
  /// among the other's (`bert.` against none, `language_model.model.` against `model.` or
  /// `model.language_model.`), unless it is the pair that explains the most names: so a BERT
  /// `pooler.dense` is not taken for a masked-LM head's `cls.predictions.transform.dense`.
  static func prefixRenames(removed: [TensorInfo], added: [TensorInfo]) -> [(TensorInfo, TensorInfo)] {
    var bySuffix: [String: [(prefix: String, info: TensorInfo)]] = [:]
    for info in added {
      let segments = info.name.split(separator: ".", omittingEmptySubsequences: false)
      guard segments.count >= 2 else { continue }
      for k in 0...(segments.count - 2) {
        bySuffix[segments[k...].joined(separator: "."), default: []].append(
          (segments[..<k].joined(separator: "."), info))
      }
    }
    struct Candidate {
      var old: TensorInfo
      var oldPrefix: String
      var options: [(prefix: String, info: TensorInfo)]
    }
    var candidates: [Candidate] = []
    var votes: [String: Int] = [:]
    for info in removed {
      let segments = info.name.split(separator: ".", omittingEmptySubsequences: false)
      guard segments.count >= 2 else { continue }
      for k in 0...(segments.count - 2) {
        guard let found = bySuffix[segments[k...].joined(separator: ".")] else { continue }
        let prefix = segments[..<k].joined(separator: ".")
        let options = found.filter {
          $0.info.shape == info.shape
            && LayerPattern.pattern(of: $0.prefix).pattern != LayerPattern.pattern(of: prefix).pattern
        }
        if !options.isEmpty {
          candidates.append(Candidate(old: info, oldPrefix: prefix, options: options))
          for option in options { votes[prefix + "\u{0}" + option.prefix, default: 0] += 1 }
        }
        break
      }
    }
    let most = votes.values.max() ?? 0
    func related(_ old: String, _ new: String) -> Bool {
      if votes[old + "\u{0}" + new, default: 0] == most { return true }
      let a = Set(old.split(separator: ".")), b = Set(new.split(separator: "."))
      return a.isSubset(of: b) || b.isSubset(of: a)
    }
    var taken: Set<String> = []
    var out: [(TensorInfo, TensorInfo)] = []
    for candidate in candidates {
      let best = candidate.options.filter {
        !taken.contains($0.info.name) && related(candidate.oldPrefix, $0.prefix)
      }.max {
        votes[candidate.oldPrefix + "\u{0}" + $0.prefix, default: 0]
          < votes[candidate.oldPrefix + "\u{0}" + $1.prefix, default: 0]
      }
      guard let best else { continue }
      taken.insert(best.info.name)
      out.append((candidate.old, best.info))
    }
    return out
  }
}
