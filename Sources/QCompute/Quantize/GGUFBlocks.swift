import CKernels
import QFormats

/// The ggml block types we write and read, with their tensor type ids from ggml.h.
public enum GGUFBlockType: String, Sendable, CaseIterable {
  case q8_0 = "Q8_0"
  case q4_0 = "Q4_0"
  case q4_1 = "Q4_1"
  case q5_0 = "Q5_0"
  case q5_1 = "Q5_1"
  case iq4_NL = "IQ4_NL"
  case q2_K = "Q2_K"
  case q3_K = "Q3_K"
  case q4_K = "Q4_K"
  case q5_K = "Q5_K"
  case q6_K = "Q6_K"

  /// The `ggml_type` value stored in a GGUF tensor info.
  public var ggmlTypeID: UInt32 {
    switch self {
    case .q4_0: 2
    case .q4_1: 3
    case .q5_0: 6
    case .q5_1: 7
    case .q8_0: 8
    case .q2_K: 10
    case .q3_K: 11
    case .q4_K: 12
    case .q5_K: 13
    case .q6_K: 14
    case .iq4_NL: 20
    }
  }

  /// The same type in QFormats' list of every ggml type.
  public var ggmlType: GGMLType {
    switch self {
    case .q4_0: .q4_0
    case .q4_1: .q4_1
    case .q5_0: .q5_0
    case .q5_1: .q5_1
    case .q8_0: .q8_0
    case .iq4_NL: .iq4NL
    case .q2_K: .q2K
    case .q3_K: .q3K
    case .q4_K: .q4K
    case .q5_K: .q5K
    case .q6_K: .q6K
    }
  }

  /// Elements per block; rows must be a whole number of blocks.
  public var blockElements: Int {
    switch self {
    case .q8_0, .q4_0, .q4_1, .q5_0, .q5_1, .iq4_NL: 32
    case .q2_K, .q3_K, .q4_K, .q5_K, .q6_K: 256
    }
  }

  /// Bytes per encoded block.
  public var blockBytes: Int {
    switch self {
    case .q8_0: 34
    case .q4_0, .iq4_NL: 18
    case .q4_1: 20
    case .q5_0: 22
    case .q5_1: 24
    case .q2_K: 84
    case .q3_K: 110
    case .q4_K: 144
    case .q5_K: 176
    case .q6_K: 210
    }
  }
}

/// Encoders and decoders for ggml's block formats, following ggml's `quantize_row_*_ref` and
/// `dequantize_row_*` step for step (f32 arithmetic in the same order, f16 rounded to nearest even).
public enum GGUFBlocks {
  /// Bytes needed to encode `elements` values.
  public static func encodedByteCount(elements: Int, type: GGUFBlockType) -> Int {
    elements / type.blockElements * type.blockBytes
  }

  /// Encodes values, a whole number of blocks, in order.
  public static func encode(_ values: UnsafeBufferPointer<Float>, type: GGUFBlockType)
    throws(QuantizeError) -> [UInt8]
  {
    try encode(values, type: type, vectorized: true)
  }

  /// `encode(_:type:)`, with the vector encoders of Q8_0 and Q4_0 (`qk_encode_q8_0`,
  /// `qk_encode_q4_0`) where the CPU has them unless `vectorized` is false: the scalar encoders
  /// are the reference they are tested against.
  static func encode(_ values: UnsafeBufferPointer<Float>, type: GGUFBlockType, vectorized: Bool)
    throws(QuantizeError) -> [UInt8]
  {
    guard values.count % type.blockElements == 0 else {
      throw .columnsNotDivisible(
        quantizer: "GGUF \(type.rawValue)", columns: values.count, by: type.blockElements)
    }
    let blocks = values.count / type.blockElements
    var out = [UInt8](repeating: 0, count: blocks * type.blockBytes)
    out.withUnsafeMutableBytes { raw in
      guard let start = raw.baseAddress, let source = values.baseAddress else { return }
      let base = SendableMutablePointer(start.assumingMemoryBound(to: UInt8.self))
      forEachRowBlock(rows: blocks, elementsPerRow: type.blockElements) { range in
        let target = base.pointer
        if vectorized, type == .q8_0 || type == .q4_0 {
          let input = source + range.lowerBound * type.blockElements
          let output = target + range.lowerBound * type.blockBytes
          let done =
            type == .q8_0
            ? qk_encode_q8_0(input, range.count, output) : qk_encode_q4_0(input, range.count, output)
          if done != 0 { return }
        }
        for block in range {
          let input = UnsafeBufferPointer(
            start: source + block * type.blockElements, count: type.blockElements)
          let output = UnsafeMutableRawBufferPointer(
            start: target + block * type.blockBytes, count: type.blockBytes)
          switch type {
          case .q8_0: encodeQ8_0(input, into: output)
          case .q4_0: encodeQ4_0(input, into: output)
          case .q4_1: encodeQ4_1(input, into: output)
          case .q5_0: encodeQ5_0(input, into: output)
          case .q5_1: encodeQ5_1(input, into: output)
          case .iq4_NL: encodeIQ4_NL(input, into: output)
          case .q2_K: encodeQ2_K(input, into: output)
          case .q3_K: encodeQ3_K(input, into: output)
          case .q4_K: encodeQ4_K(input, into: output)
          case .q5_K: encodeQ5_K(input, into: output)
          case .q6_K: encodeQ6_K(input, into: output)
          }
        }
      }
    }
    return out
  }

  /// Decodes whole blocks back to floats.
  public static func decode(_ bytes: UnsafeRawBufferPointer, type: GGUFBlockType)
    throws(QuantizeError) -> [Float]
  {
    try dequantize(bytes, type: type.ggmlType)
  }

  /// The ggml block types `dequantize(_:type:)` decodes.
  ///
  /// Those llama.cpp's common presets write; the IQ grids, ternary and FP4 types are not among them.
  public static let decodableTypes: Set<GGMLType> = [
    .q4_0, .q4_1, .q5_0, .q5_1, .q8_0, .q2K, .q3K, .q4K, .q5K, .q6K, .iq4NL,
  ]

  /// Decodes whole blocks of any type in `decodableTypes` back to floats, as ggml's
  /// `dequantize_row_*` does (f32 arithmetic in its order), so values match gguf-py's bit for bit.
  /// - Throws: `.unsupportedBlockType` for other types, `.truncatedBlocks` for a partial block.
  public static func dequantize(_ bytes: UnsafeRawBufferPointer, type: GGMLType)
    throws(QuantizeError) -> [Float]
  {
    let decoder: (UnsafeRawBufferPointer, UnsafeMutableBufferPointer<Float>) -> Void
    switch type {
    case .q4_0: decoder = decodeQ4_0
    case .q4_1: decoder = decodeQ4_1
    case .q5_0: decoder = decodeQ5_0
    case .q5_1: decoder = decodeQ5_1
    case .q8_0: decoder = decodeQ8_0
    case .q2K: decoder = decodeQ2_K
    case .q3K: decoder = decodeQ3_K
    case .q4K: decoder = decodeQ4_K
    case .q5K: decoder = decodeQ5_K
    case .q6K: decoder = decodeQ6_K
    case .iq4NL: decoder = decodeIQ4_NL
    default: throw .unsupportedBlockType(type: type.name)
    }
    let blockBytes = type.bytesPerBlock
    let blockElements = type.blockSize
    guard bytes.count % blockBytes == 0 else {
      throw .truncatedBlocks(type: type.name, bytes: bytes.count, blockBytes: blockBytes)
    }
    let blocks = bytes.count / blockBytes
    var out = [Float](repeating: 0, count: blocks * blockElements)
    out.withUnsafeMutableBufferPointer { buffer in
      guard let start = buffer.baseAddress, let source = bytes.baseAddress else { return }
      let base = SendableMutablePointer(start)
      forEachRowBlock(rows: blocks, elementsPerRow: blockElements) { range in
        let target = base.pointer
        for block in range {
          decoder(
            UnsafeRawBufferPointer(start: source + block * blockBytes, count: blockBytes),
            UnsafeMutableBufferPointer(start: target + block * blockElements, count: blockElements))
        }
      }
    }
    return out
  }

  // MARK: - Shared helpers

  /// ggml's `nearest_int`: round half to even through the 1.5 * 2^23 trick, bit for bit.
  @inline(__always)
  static func nearestInt(_ value: Float) -> Int32 {
    let shifted = value + 12_582_912
    return Int32(bitPattern: shifted.bitPattern & 0x007F_FFFF) - 0x0040_0000
  }

  @inline(__always)
  static func storeHalf(_ value: Float, into block: UnsafeMutableRawBufferPointer, at offset: Int) {
    block.storeBytes(
      of: Float16(value).bitPattern.littleEndian, toByteOffset: offset, as: UInt16.self)
  }

  @inline(__always)
  static func loadHalf(_ block: UnsafeRawBufferPointer, at offset: Int) -> Float {
    Float(
      Float16(
        bitPattern: UInt16(
          littleEndian: block.loadUnaligned(fromByteOffset: offset, as: UInt16.self))))
  }
}
