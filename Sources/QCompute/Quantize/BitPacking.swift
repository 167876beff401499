/// LSB-first b-bit code streams: element k occupies bits [k*b, (k+1)*b) of the stream.
///
/// This is MLX's layout (and GPTQ's and the ggml K-quants' bit order); 3-bit codes run across byte
/// boundaries, eight codes to three bytes (5 and 6 bits likewise, to five and six bytes). Codes
/// wider than `bits` are masked, not rejected.
public enum BitPacking {
  /// The bit widths a qpack stores: the engine's low-bit kernels read these.
  public static let supportedBits: Set<Int> = [2, 3, 4, 8]
  /// The bit widths the packer handles: the qpack's and MLX's 5 and 6.
  public static let streamBits: Set<Int> = [2, 3, 4, 5, 6, 8]

  /// Bytes needed for `count` codes of `bits` bits, the last byte zero-padded.
  public static func byteCount(codes count: Int, bits: Int) -> Int {
    (count * bits + 7) / 8
  }

  /// 32-bit words needed for `count` codes of `bits` bits, the last word zero-padded.
  public static func wordCount(codes count: Int, bits: Int) -> Int {
    (count * bits + 31) / 32
  }

  /// Packs one stream of codes into bytes.
  public static func pack(_ codes: UnsafeBufferPointer<UInt8>, bits: Int) throws(QuantizeError)
    -> [UInt8]
  {
    try checkBits(bits)
    var out = [UInt8](repeating: 0, count: byteCount(codes: codes.count, bits: bits))
    out.withUnsafeMutableBytes { packStream(codes, bits: bits, into: $0) }
    return out
  }

  /// Unpacks `count` codes from a byte stream.
  public static func unpack(_ bytes: UnsafeRawBufferPointer, count: Int, bits: Int)
    throws(QuantizeError) -> [UInt8]
  {
    try checkBits(bits)
    let needed = byteCount(codes: count, bits: bits)
    guard bytes.count >= needed else {
      throw .elementCountMismatch(quantizer: "BitPacking.unpack", expected: needed, actual: bytes.count)
    }
    var out = [UInt8](repeating: 0, count: count)
    out.withUnsafeMutableBufferPointer { unpackStream(bytes, bits: bits, into: $0) }
    return out
  }

  /// Packs a row-major [rows, columns] code matrix, each row its own stream padded to whole words,
  /// as MLX stores `weight` (U32 [out, in*bits/32]).
  public static func packWords(
    _ codes: UnsafeBufferPointer<UInt8>, rows: Int, columns: Int, bits: Int
  ) throws(QuantizeError) -> [UInt32] {
    try checkBits(bits)
    guard rows * columns == codes.count else {
      throw .elementCountMismatch(
        quantizer: "BitPacking.packWords", expected: rows * columns, actual: codes.count)
    }
    let wordsPerRow = wordCount(codes: columns, bits: bits)
    var out = [UInt32](repeating: 0, count: rows * wordsPerRow)
    out.withUnsafeMutableBytes { raw in
      for row in 0..<rows {
        let source = UnsafeBufferPointer(rebasing: codes[row * columns..<(row + 1) * columns])
        let target = UnsafeMutableRawBufferPointer(
          rebasing: raw[row * wordsPerRow * 4..<(row + 1) * wordsPerRow * 4])
        packStream(source, bits: bits, into: target)
      }
    }
    #if _endian(big)
      for index in out.indices { out[index] = UInt32(littleEndian: out[index]) }
    #endif
    return out
  }

  /// Unpacks a word matrix written by `packWords` back to row-major codes.
  public static func unpackWords(
    _ words: UnsafeBufferPointer<UInt32>, rows: Int, columns: Int, bits: Int
  ) throws(QuantizeError) -> [UInt8] {
    try checkBits(bits)
    let wordsPerRow = wordCount(codes: columns, bits: bits)
    guard words.count == rows * wordsPerRow else {
      throw .elementCountMismatch(
        quantizer: "BitPacking.unpackWords", expected: rows * wordsPerRow, actual: words.count)
    }
    var littleEndianWords = Array(words)
    #if _endian(big)
      for index in littleEndianWords.indices {
        littleEndianWords[index] = littleEndianWords[index].littleEndian
      }
    #endif
    var out = [UInt8](repeating: 0, count: rows * columns)
    littleEndianWords.withUnsafeBytes { raw in
      out.withUnsafeMutableBufferPointer { codes in
        for row in 0..<rows {
          let source = UnsafeRawBufferPointer(
            rebasing: raw[row * wordsPerRow * 4..<(row + 1) * wordsPerRow * 4])
          let target = UnsafeMutableBufferPointer(rebasing: codes[row * columns..<(row + 1) * columns])
          unpackStream(source, bits: bits, into: target)
        }
      }
    }
    return out
  }

  private static func checkBits(_ bits: Int) throws(QuantizeError) {
    guard streamBits.contains(bits) else {
      throw .unsupportedBits(quantizer: "BitPacking", bits: bits)
    }
  }

  /// Writes the stream eight codes (= `bits` bytes) at a time through one 64-bit word.
  /// `target` must hold at least `byteCount(codes:bits:)` bytes, zero beyond what is written.
  static func packStream(
    _ codes: UnsafeBufferPointer<UInt8>, bits: Int, into target: UnsafeMutableRawBufferPointer
  ) {
    let mask = UInt64((1 << bits) - 1)
    let fullChunks = codes.count / 8
    var input = 0
    var output = 0
    if let source = codes.baseAddress, bits <= 4 {
      // Eight byte-sized codes in one word, merged pairwise: 8-bit lanes -> 16 -> 32 -> 64
      // (the 8 * bits result fits the low 32 bits only up to 4 bits).
      let byteMask = mask &* 0x0101_0101_0101_0101
      let pairShift = UInt64(8 &- bits)
      let quadShift = UInt64(16 &- 2 &* bits)
      let octShift = UInt64(32 &- 4 &* bits)
      for _ in 0..<fullChunks {
        var chunk = UInt64(
          littleEndian: UnsafeRawPointer(source + input).loadUnaligned(as: UInt64.self)) & byteMask
        chunk = (chunk | chunk >> pairShift) & 0x00FF_00FF_00FF_00FF
        chunk = (chunk | chunk >> quadShift) & 0x0000_FFFF_0000_FFFF
        chunk = (chunk | chunk >> octShift) & 0x0000_0000_FFFF_FFFF
        storeLowBytes(chunk, count: bits, into: target, at: output)
        input &+= 8
        output &+= bits
      }
    } else {
      for _ in 0..<fullChunks {
        var chunk: UInt64 = 0
        for k in 0..<8 {
          chunk |= (UInt64(codes[input &+ k]) & mask) << UInt64(k &* bits)
        }
        storeLowBytes(chunk, count: bits, into: target, at: output)
        input &+= 8
        output &+= bits
      }
    }
    let remaining = codes.count &- input
    if remaining > 0 {
      var chunk: UInt64 = 0
      for k in 0..<remaining {
        chunk |= (UInt64(codes[input &+ k]) & mask) << UInt64(k &* bits)
      }
      storeLowBytes(chunk, count: (remaining * bits + 7) / 8, into: target, at: output)
    }
  }

  /// Reads the stream eight codes at a time; the inverse of `packStream`.
  static func unpackStream(
    _ bytes: UnsafeRawBufferPointer, bits: Int, into codes: UnsafeMutableBufferPointer<UInt8>
  ) {
    let mask = UInt64((1 << bits) - 1)
    let fullChunks = codes.count / 8
    var input = 0
    var output = 0
    for _ in 0..<fullChunks {
      let chunk = loadLowBytes(count: bits, from: bytes, at: input)
      for k in 0..<8 {
        codes[output &+ k] = UInt8(truncatingIfNeeded: (chunk >> UInt64(k &* bits)) & mask)
      }
      input &+= bits
      output &+= 8
    }
    let remaining = codes.count &- output
    if remaining > 0 {
      let chunk = loadLowBytes(count: (remaining * bits + 7) / 8, from: bytes, at: input)
      for k in 0..<remaining {
        codes[output &+ k] = UInt8(truncatingIfNeeded: (chunk >> UInt64(k &* bits)) & mask)
      }
    }
  }

  @inline(__always)
  private static func storeLowBytes(
    _ value: UInt64, count: Int, into target: UnsafeMutableRawBufferPointer, at offset: Int
  ) {
    switch count {
    case 8: target.storeBytes(of: value.littleEndian, toByteOffset: offset, as: UInt64.self)
    case 4:
      target.storeBytes(
        of: UInt32(truncatingIfNeeded: value).littleEndian, toByteOffset: offset, as: UInt32.self)
    case 2:
      target.storeBytes(
        of: UInt16(truncatingIfNeeded: value).littleEndian, toByteOffset: offset, as: UInt16.self)
    default:
      for byte in 0..<count {
        target[offset &+ byte] = UInt8(truncatingIfNeeded: value >> UInt64(byte &* 8))
      }
    }
  }

  @inline(__always)
  private static func loadLowBytes(count: Int, from bytes: UnsafeRawBufferPointer, at offset: Int)
    -> UInt64
  {
    switch count {
    case 8: return UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: offset, as: UInt64.self))
    case 4:
      return UInt64(UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: offset, as: UInt32.self)))
    case 2:
      return UInt64(UInt16(littleEndian: bytes.loadUnaligned(fromByteOffset: offset, as: UInt16.self)))
    default:
      var value: UInt64 = 0
      for byte in 0..<count {
        value |= UInt64(bytes[offset &+ byte]) << UInt64(byte &* 8)
      }
      return value
    }
  }
}
