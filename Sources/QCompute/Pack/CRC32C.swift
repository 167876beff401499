import CCRC32C

/// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), the checksum a qpack records per
/// tensor: the CPU's crc32 instruction where it has one (SSE4.2, 4.5 to 6 GB/s on the build
/// machine), else slicing-by-8 (0.5 to 1.1 GB/s), so checking a pack costs little next to reading it.
public enum CRC32C {
  /// Whether the CPU computes CRC-32C itself.
  static let hardware = ccrc32c_hardware() != 0

  /// Eight 256-entry tables: `tables[k][b]` is the CRC of byte `b` followed by `k` zero bytes.
  static let tables: [UInt32] = {
    var table = [UInt32](repeating: 0, count: 8 * 256)
    for byte in 0..<256 {
      var crc = UInt32(byte)
      for _ in 0..<8 { crc = (crc & 1) != 0 ? (crc >> 1) ^ 0x82F6_3B78 : crc >> 1 }
      table[byte] = crc
    }
    for slice in 1..<8 {
      for byte in 0..<256 {
        let previous = table[(slice - 1) * 256 + byte]
        table[slice * 256 + byte] = (previous >> 8) ^ table[Int(previous & 0xFF)]
      }
    }
    return table
  }()

  /// The CRC-32C of `bytes`, continuing from `crc` (the checksum of what came before, 0 at first).
  public static func checksum(_ bytes: UnsafeRawBufferPointer, continuing crc: UInt32 = 0) -> UInt32 {
    guard let base = bytes.baseAddress, !bytes.isEmpty else { return crc }
    if hardware {
      return ~ccrc32c_update(~crc, base.assumingMemoryBound(to: UInt8.self), bytes.count)
    }
    return tableChecksum(bytes, continuing: crc)
  }

  /// The table-driven CRC-32C (slicing-by-8), for CPUs without the instruction.
  static func tableChecksum(_ bytes: UnsafeRawBufferPointer, continuing crc: UInt32 = 0) -> UInt32 {
    var state = ~crc
    guard let base = bytes.baseAddress, !bytes.isEmpty else { return crc }
    tables.withUnsafeBufferPointer { table in
      var index = 0
      let count = bytes.count
      while index &+ 8 <= count {
        let word = UInt64(littleEndian: (base + index).loadUnaligned(as: UInt64.self)) ^ UInt64(state)
        state =
          table[7 * 256 &+ Int(word & 0xFF)] ^ table[6 * 256 &+ Int((word >> 8) & 0xFF)]
          ^ table[5 * 256 &+ Int((word >> 16) & 0xFF)] ^ table[4 * 256 &+ Int((word >> 24) & 0xFF)]
          ^ table[3 * 256 &+ Int((word >> 32) & 0xFF)] ^ table[2 * 256 &+ Int((word >> 40) & 0xFF)]
          ^ table[1 * 256 &+ Int((word >> 48) & 0xFF)] ^ table[Int(word >> 56)]
        index &+= 8
      }
      while index < count {
        state = (state >> 8) ^ table[Int((state ^ UInt32(base.load(fromByteOffset: index, as: UInt8.self))) & 0xFF)]
        index &+= 1
      }
    }
    return ~state
  }

  /// The CRC-32C of `bytes`, continuing from `crc`.
  public static func checksum(_ bytes: [UInt8], continuing crc: UInt32 = 0) -> UInt32 {
    bytes.withUnsafeBytes { checksum($0, continuing: crc) }
  }

  /// The text a qpack stores: `crc32c:0x` and eight lowercase hex digits (fixed width, so a
  /// header's size is known before the data is).
  public static func formatted(_ crc: UInt32) -> String {
    let hex = String(crc, radix: 16)
    return "crc32c:0x" + String(repeating: "0", count: 8 - hex.count) + hex
  }

  /// The stored text before the data is known; as long as any real value.
  public static let placeholder = formatted(0)
}
