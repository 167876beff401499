/// Ids of pre-tokens already merged, keyed by their bytes: an open-addressing table over two
/// arenas, so a lookup allocates nothing.
struct WordCache {
  private struct Slot {
    var hash: UInt64 = 0
    var keyStart: Int32 = -1
    var keyLength: Int32 = 0
    var idsStart: Int32 = 0
    var idsCount: Int32 = 0
  }

  static let maximumWordLength = 256
  static let maximumEntries = 1 << 20

  private var slots = [Slot](repeating: Slot(), count: 1 << 14)
  private var keys: [UInt8] = []
  private var ids: [Int32] = []
  private(set) var count = 0

  @inline(__always)
  static func hash(_ bytes: UnsafeBufferPointer<UInt8>) -> UInt64 {
    var hash: UInt64 = 0xcbf2_9ce4_8422_2325
    for byte in bytes { hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3 }
    return hash | 1
  }

  /// Appends the cached ids of `bytes` to `output`, or returns false.
  func lookup(_ bytes: UnsafeBufferPointer<UInt8>, hash: UInt64, into output: inout [Int32]) -> Bool {
    let mask = slots.count &- 1
    var index = Int(truncatingIfNeeded: hash) & mask
    while true {
      let slot = slots[index]
      if slot.keyStart < 0 { return false }
      if slot.hash == hash && Int(slot.keyLength) == bytes.count {
        let equal = keys.withUnsafeBufferPointer { keys in
          var offset = 0
          let start = Int(slot.keyStart)
          while offset < bytes.count {
            if keys[start &+ offset] != bytes[offset] { return false }
            offset &+= 1
          }
          return true
        }
        if equal {
          let start = Int(slot.idsStart)
          output.append(contentsOf: ids[start..<(start &+ Int(slot.idsCount))])
          return true
        }
      }
      index = (index &+ 1) & mask
    }
  }

  mutating func insert(_ bytes: UnsafeBufferPointer<UInt8>, hash: UInt64, ids newIDs: ArraySlice<Int32>) {
    guard count < Self.maximumEntries else { return }
    if (count &+ 1) &* 2 > slots.count { grow() }
    let slot = Slot(
      hash: hash, keyStart: Int32(keys.count), keyLength: Int32(bytes.count),
      idsStart: Int32(ids.count), idsCount: Int32(newIDs.count))
    keys.append(contentsOf: bytes)
    ids.append(contentsOf: newIDs)
    place(slot)
    count &+= 1
  }

  private mutating func place(_ slot: Slot) {
    let mask = slots.count &- 1
    var index = Int(truncatingIfNeeded: slot.hash) & mask
    while slots[index].keyStart >= 0 { index = (index &+ 1) & mask }
    slots[index] = slot
  }

  private mutating func grow() {
    let old = slots
    slots = [Slot](repeating: Slot(), count: old.count &* 2)
    for slot in old where slot.keyStart >= 0 { place(slot) }
  }
}
