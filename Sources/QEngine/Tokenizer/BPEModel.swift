import QFormats

/// A vocabulary's spellings and their ids, each spelling exact (see `ExactString`).
typealias Vocabulary = [ExactString: Int]

/// The merge table of a byte-level BPE vocabulary and the merge loop over one pre-token.
struct BPEModel: Sendable {
  /// Vocabulary id of the symbol of each byte, -1 when the vocabulary lacks it (the byte is
  /// then dropped, as `tokenizers` does without an unknown token).
  let byteSymbols: [Int32]
  /// `(left << 32) | right` to `(rank << 32) | merged id`.
  let merges: [UInt64: UInt64]
  /// Spelling to id, for `ignore_merges` (whole pre-token looked up first).
  let vocabulary: Vocabulary
  let ignoreMerges: Bool

  @inline(__always)
  static func pairKey(_ left: Int32, _ right: Int32) -> UInt64 {
    UInt64(UInt32(bitPattern: left)) << 32 | UInt64(UInt32(bitPattern: right))
  }

  /// Appends the ids of one pre-token's bytes, applying merges lowest rank first, leftmost
  /// first among equal ranks (the order of `tokenizers`' priority queue).
  func encode(_ bytes: UnsafeBufferPointer<UInt8>, into output: inout [Int32]) {
    if bytes.count == 1 {
      let symbol = byteSymbols[Int(bytes[0])]
      if symbol >= 0 { output.append(symbol) }
      return
    }
    if ignoreMerges, let id = vocabulary[ExactString(ByteLevel.encode(bytes))] {
      output.append(Int32(id))
      return
    }
    var symbols: [Int32] = []
    symbols.reserveCapacity(bytes.count)
    for byte in bytes {
      let symbol = byteSymbols[Int(byte)]
      if symbol >= 0 { symbols.append(symbol) }
    }
    if symbols.count > 48 {
      mergeWithHeap(&symbols)
    } else {
      mergeByScan(&symbols)
    }
    output.append(contentsOf: symbols)
  }

  /// Quadratic merge for short words: fastest when there are only a few symbols.
  func mergeByScan(_ symbols: inout [Int32]) {
    // A word whose bytes all lack a vocabulary symbol arrives empty; `0..<-1` would trap.
    guard symbols.count >= 2 else { return }
    let none = UInt64.max
    var ranks = [UInt64](repeating: none, count: symbols.count)
    for index in 0..<(symbols.count &- 1) {
      ranks[index] = merges[Self.pairKey(symbols[index], symbols[index &+ 1])] ?? none
    }
    var count = symbols.count
    while count > 1 {
      var best = none
      var position = -1
      for index in 0..<(count &- 1) where ranks[index] < best {
        best = ranks[index]
        position = index
      }
      if position < 0 { break }
      symbols[position] = Int32(truncatingIfNeeded: best & 0xFFFF_FFFF)
      symbols.remove(at: position &+ 1)
      ranks.remove(at: position &+ 1)
      count &-= 1
      ranks[count &- 1] = none
      if position &+ 1 < count {
        ranks[position] = merges[Self.pairKey(symbols[position], symbols[position &+ 1])] ?? none
      } else {
        ranks[position] = none
      }
      if position > 0 {
        ranks[position &- 1] =
          merges[Self.pairKey(symbols[position &- 1], symbols[position])] ?? none
      }
    }
    symbols.removeSubrange(count...)
  }

  /// Merge for long words: a doubly linked list of symbols and a binary heap of candidate
  /// pairs keyed by (rank, position); stale entries are skipped when popped.
  func mergeWithHeap(_ symbols: inout [Int32]) {
    let count = symbols.count
    if count < 2 { return }
    var previous = (0..<count).map { $0 &- 1 }
    var next = (0..<count).map { $0 &+ 1 }
    var alive = [Bool](repeating: true, count: count)
    // Heap entries: (rank << 32 | position) ordered ascending; the merged id is looked up again.
    var heap = Heap()
    for index in 0..<(count &- 1) {
      if let value = merges[Self.pairKey(symbols[index], symbols[index &+ 1])] {
        heap.push((value & 0xFFFF_FFFF_0000_0000) | UInt64(index))
      }
    }
    while let entry = heap.pop() {
      let position = Int(entry & 0xFFFF_FFFF)
      let rank = entry >> 32
      guard alive[position] else { continue }
      let right = next[position]
      guard right < count,
        let value = merges[Self.pairKey(symbols[position], symbols[right])],
        value >> 32 == rank
      else { continue }
      symbols[position] = Int32(truncatingIfNeeded: value & 0xFFFF_FFFF)
      alive[right] = false
      let after = next[right]
      next[position] = after
      if after < count { previous[after] = position }
      if after < count, let merged = merges[Self.pairKey(symbols[position], symbols[after])] {
        heap.push((merged & 0xFFFF_FFFF_0000_0000) | UInt64(position))
      }
      let before = previous[position]
      if before >= 0, let merged = merges[Self.pairKey(symbols[before], symbols[position])] {
        heap.push((merged & 0xFFFF_FFFF_0000_0000) | UInt64(before))
      }
    }
    var result: [Int32] = []
    var index = 0
    while index < count {
      result.append(symbols[index])
      index = next[index]
    }
    symbols = result
  }
}

/// A minimal binary min-heap of packed keys.
struct Heap {
  var items: [UInt64] = []

  mutating func push(_ value: UInt64) {
    items.append(value)
    var child = items.count &- 1
    while child > 0 {
      let parent = (child &- 1) / 2
      if items[parent] <= items[child] { break }
      items.swapAt(parent, child)
      child = parent
    }
  }

  mutating func pop() -> UInt64? {
    guard let top = items.first else { return nil }
    let last = items.removeLast()
    if items.isEmpty { return top }
    items[0] = last
    var parent = 0
    while true {
      let left = parent &* 2 &+ 1
      if left >= items.count { break }
      var smallest = left
      if left &+ 1 < items.count && items[left &+ 1] < items[left] { smallest = left &+ 1 }
      if items[parent] <= items[smallest] { break }
      items.swapAt(parent, smallest)
      parent = smallest
    }
    return top
  }
}
