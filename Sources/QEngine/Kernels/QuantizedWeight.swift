import Dispatch
import QCompute
import QFormats

/// A packed weight kept in its low-bit form: codes stay packed and each row is rebuilt only
/// when a product needs it, so no dequantized copy of the matrix is ever held.
///
/// Every qpack grid reduces to one of two per-group formulas once the scales are known:
/// `w = s * q + b` (MLX's bias) or `w = s * (q - z)` (integer, float or fixed zeros). Scales
/// of the bilevel grid are rebuilt from their 4-bit codes at load, as `PackDecoder` does, so a
/// row comes out bit for bit as the pack's dequantized checkpoint would give it.
public struct QuantizedWeight: Sendable {
  public let rows: Int
  public let columns: Int
  public let bits: Int
  public let groupSize: Int
  /// `rows` rows of `bytesPerRow` bytes, LSB-first codes.
  let codes: [UInt8]
  let bytesPerRow: Int
  /// Per group, row-major `[rows, columns / groupSize]`.
  let scales: [Float]
  let offsets: [Float]
  /// `true` for `s * q + offset`, `false` for `s * (q - offset)`.
  let offsetIsBias: Bool
  /// Whether a decoding step multiplies the codes by int8-quantized activations, integer dot
  /// products per block of 32 as llama.cpp's kernels do (`QuantizedWeight+Int8.swift` states
  /// the error), rather than by the floats themselves. Only weights of 2, 4 or 8 bits in groups
  /// of a multiple of 32 take that path; long inputs always run on floats.
  public var quantizesActivations = false

  var groupsPerRow: Int { columns / groupSize }

  /// A weight from its parts; `offsets` are biases when `offsetIsBias`, zeros in code units otherwise.
  public init(
    rows: Int, columns: Int, bits: Int, groupSize: Int, codes: [UInt8], scales: [Float],
    offsets: [Float], offsetIsBias: Bool, location: String = "-", name: String = "weight"
  ) throws(DecoderError) {
    let bytesPerRow = BitPacking.byteCount(codes: columns, bits: bits)
    guard BitPacking.supportedBits.contains(bits), groupSize > 0, columns % groupSize == 0,
      codes.count == rows * bytesPerRow, scales.count == rows * (columns / groupSize),
      offsets.count == scales.count
    else {
      throw .invalidWeight(
        location: location, tensor: name,
        reason: "\(bits)-bit codes of \(codes.count) bytes, \(scales.count) scales and \(offsets.count) offsets do not fit \(rows) x \(columns) in groups of \(groupSize)")
    }
    self.rows = rows
    self.columns = columns
    self.bits = bits
    self.groupSize = groupSize
    self.codes = codes
    self.bytesPerRow = bytesPerRow
    self.scales = scales
    self.offsets = offsets
    self.offsetIsBias = offsetIsBias
  }

  /// Reads packed tensor `name` of `pack` from its companions, without dequantizing it.
  public init(pack: PackedCheckpoint, name: String) throws {
    guard let description = pack.packDescriptions[name] else {
      throw EngineError.missingTensor(location: pack.location, tensor: name)
    }
    // A flipped byte is an error naming the file and tensor, not a silently wrong weight.
    try pack.verifyChecksum(of: name)
    let base = pack.base
    let rows = description.rows
    let groups = description.groupsPerRow
    func bytes(_ suffix: String) throws -> [UInt8] {
      try base.withRawBytes(of: name + "." + suffix) { [UInt8]($0) }
    }
    func floats(_ suffix: String) throws -> [Float] { try base.floats(of: name + "." + suffix) }
    func unpackRows(_ packed: [UInt8], rows: Int, columns: Int, bits: Int) throws -> [UInt8] {
      let perRow = BitPacking.byteCount(codes: columns, bits: bits)
      guard packed.count == rows * perRow else {
        throw DecoderError.invalidWeight(location: pack.location, tensor: name, reason: "has \(packed.count) code bytes, expected \(rows * perRow)")
      }
      var out = [UInt8](repeating: 0, count: rows * columns)
      if out.isEmpty { return out }
      packed.withUnsafeBufferPointer { source in
        out.withUnsafeMutableBufferPointer { target in
          for row in 0..<rows {
            Self.unpack(
              source.baseAddress! + row * perRow, count: columns, bits: bits,
              into: target.baseAddress! + row * columns)
          }
        }
      }
      return out
    }

    var scales: [Float]
    if description.grid == .bilevel {
      let chunk = description.scaleGroupSize ?? 1
      let steps = try floats("scale_step")
      let chunkZeros = try floats("scale_zero")
      let scaleCodes = try unpackRows(try bytes("qscales"), rows: 1, columns: rows * groups, bits: 4)
      guard chunk > 0, steps.count * chunk >= rows * groups, chunkZeros.count == steps.count else {
        throw DecoderError.invalidWeight(location: pack.location, tensor: name, reason: "has \(steps.count) scale chunks for \(rows * groups) groups")
      }
      scales = [Float](repeating: 0, count: rows * groups)
      for ordered in 0..<(rows * groups) {
        let chunkIndex = ordered / chunk
        scales[(ordered % rows) * groups + ordered / rows] =
          steps[chunkIndex] * (Float(scaleCodes[ordered]) - chunkZeros[chunkIndex])
      }
    } else {
      scales = try floats("scales")
    }
    let offsets: [Float]
    switch description.zero {
    case .bias: offsets = try floats("biases")
    case .float: offsets = try floats("zeros")
    case .fixed: offsets = [Float](repeating: Float(description.zeroPoint ?? 0), count: rows * groups)
    case .int:
      offsets = try unpackRows(try bytes("qzeros"), rows: rows, columns: groups, bits: description.bits)
        .map { Float($0) }
    }
    try self.init(
      rows: rows, columns: description.columns, bits: description.bits,
      groupSize: description.groupSize, codes: try bytes("qweight"), scales: scales,
      offsets: offsets, offsetIsBias: description.zero == .bias, location: pack.location, name: name)
  }

  /// Unpacks `count` LSB-first `bits`-bit codes starting at `source`.
  static func unpack(
    _ source: UnsafePointer<UInt8>, count: Int, bits: Int, into target: UnsafeMutablePointer<UInt8>
  ) {
    switch bits {
    case 8:
      target.update(from: source, count: count)
    case 4:
      var index = 0
      var byte = 0
      while index &+ 1 < count {
        let value = source[byte]
        target[index] = value & 0x0F
        target[index &+ 1] = value >> 4
        index &+= 2
        byte &+= 1
      }
      if index < count { target[index] = source[byte] & 0x0F }
    case 2:
      var index = 0
      var byte = 0
      while index &+ 3 < count {
        let value = source[byte]
        target[index] = value & 3
        target[index &+ 1] = (value >> 2) & 3
        target[index &+ 2] = (value >> 4) & 3
        target[index &+ 3] = value >> 6
        index &+= 4
        byte &+= 1
      }
      while index < count {
        target[index] = (source[byte] >> UInt8(2 &* (index & 3))) & 3
        index &+= 1
      }
    default:
      let mask = UInt32((1 << bits) - 1)
      for index in 0..<count {
        let bit = index &* bits
        let byte = bit >> 3
        let shift = UInt32(bit & 7)
        var word = UInt32(source[byte])
        if Int(shift) &+ bits > 8 { word |= UInt32(source[byte &+ 1]) << 8 }
        target[index] = UInt8((word >> shift) & mask)
      }
    }
  }

  /// Rebuilds rows `range` into `target` (`range.count * columns` floats), using `scratch`
  /// (`columns` bytes) for the codes of one row.
  func dequantizeRows(
    _ range: Range<Int>, into target: UnsafeMutablePointer<Float>,
    scratch: UnsafeMutablePointer<UInt8>
  ) {
    let columns = self.columns
    let group = groupSize
    let groups = groupsPerRow
    codes.withUnsafeBufferPointer { codeBuffer in
      scales.withUnsafeBufferPointer { scaleBuffer in
        offsets.withUnsafeBufferPointer { offsetBuffer in
          for row in range {
            Self.unpack(codeBuffer.baseAddress! + row &* bytesPerRow, count: columns, bits: bits, into: scratch)
            let out = target + (row &- range.lowerBound) &* columns
            for groupIndex in 0..<groups {
              let scale = scaleBuffer[row &* groups &+ groupIndex]
              let offset = offsetBuffer[row &* groups &+ groupIndex]
              let start = groupIndex &* group
              if offsetIsBias {
                for index in start..<(start &+ group) { out[index] = scale * Float(scratch[index]) + offset }
              } else {
                for index in start..<(start &+ group) { out[index] = scale * (Float(scratch[index]) - offset) }
              }
            }
          }
        }
      }
    }
  }

  /// The whole matrix dequantized, for tests and for callers that want a dense copy.
  public func dequantized() -> [Float] {
    var out = [Float](repeating: 0, count: rows * columns)
    let scratch = UnsafeMutablePointer<UInt8>.allocate(capacity: max(columns, 1))
    defer { scratch.deallocate() }
    out.withUnsafeMutableBufferPointer { dequantizeRows(0..<rows, into: $0.baseAddress!, scratch: scratch) }
    return out
  }
}
