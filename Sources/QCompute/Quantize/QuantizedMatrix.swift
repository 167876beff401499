/// A row-major [rows, columns] weight matrix as integer codes plus per-group scales and offsets.
///
/// Groups run along each row (the input dimension); group `j` of row `r` owns
/// `scales[r * groupsPerRow + j]` and the matching `offsets` entry.
public struct QuantizedMatrix: Sendable, Equatable {
  /// Which quantizer made the grid; it decides how `offsets` are read.
  public enum Method: String, Sendable, Equatable, CaseIterable {
    /// MLX's asymmetric min/max grid with an exact edge: w = scale * q + bias.
    case affine
    /// Signed absmax grid, codes offset by 2^(b-1): w = scale * (q - zero).
    case symmetric
    /// SPEED-Q's embedding grid, zero fixed at 2^(b-1) - 1: w = scale * (q - zero).
    case symmetricEmbedding
    /// Min/max grid after the best shrink of both edges: w = scale * (q - zero).
    case clipSearch
    /// Half-quadratic zero refinement with a float zero: w = scale * (q - zero).
    case hqq
    /// SPEED-Q's grid with 4-bit second-level scales: w = scale * (q - zero).
    case bilevel
  }

  /// How a group's offset enters the reconstruction.
  public enum OffsetKind: String, Sendable, Equatable {
    /// `offsets` are additive biases: w = scale * q + bias.
    case bias
    /// `offsets` are zero points in code units: w = scale * (q - zero).
    case zeroPoint
  }

  /// SPEED-Q's second level: the group scales, taken in group-index-major order
  /// (entry `j * rows + r` is group `j` of row `r`), quantized to 4 bits in chunks of `chunkSize`.
  public struct SecondLevel: Sendable, Equatable {
    public var bits: Int
    public var chunkSize: Int
    /// One 4-bit code per group scale, in group-index-major order.
    public var codes: [UInt8]
    /// The second-level step S2 of each chunk.
    public var chunkScales: [Float]
    /// The second-level float zero Z2 of each chunk.
    public var chunkZeros: [Float]
    /// The first-level scales before second-level quantization, in matrix order.
    public var unquantizedScales: [Float]
  }

  public var method: Method
  public var bits: Int
  public var groupSize: GroupSize
  public var rows: Int
  public var columns: Int
  /// One code per weight, row-major, each in 0..<2^bits.
  public var codes: [UInt8]
  /// The step of each group, [rows, groupsPerRow]; for `bilevel` the dequantized second-level value.
  public var scales: [Float]
  /// The bias or zero point of each group, [rows, groupsPerRow], read per `offsetKind`.
  public var offsets: [Float]
  public var secondLevel: SecondLevel?

  public var offsetKind: OffsetKind { method == .affine ? .bias : .zeroPoint }

  /// Elements per group in this matrix.
  public var groupLength: Int { groupSize.length(columns: columns) }

  /// Groups in each row.
  public var groupsPerRow: Int { groupLength == 0 ? 0 : columns / groupLength }

  /// Reconstructs the float matrix, row-major [rows, columns].
  public func dequantize() -> [Float] {
    var out = [Float](repeating: 0, count: rows * columns)
    let length = groupLength
    let groups = groupsPerRow
    guard length > 0 else { return out }
    let isBias = offsetKind == .bias
    codes.withUnsafeBufferPointer { codes in
      scales.withUnsafeBufferPointer { scales in
        offsets.withUnsafeBufferPointer { offsets in
          out.withUnsafeMutableBufferPointer { out in
            guard let outStart = out.baseAddress else { return }
            let target = SendableMutablePointer(outStart)
            forEachRowBlock(rows: rows, elementsPerRow: columns) { rowRange in
              let out = target.pointer
              for row in rowRange {
                for group in 0..<groups {
                  let scale = scales[row &* groups &+ group]
                  let offset = offsets[row &* groups &+ group]
                  let start = row &* columns &+ group &* length
                  if isBias {
                    for index in start..<(start &+ length) {
                      out[index] = scale * Float(codes[index]) + offset
                    }
                  } else {
                    for index in start..<(start &+ length) {
                      out[index] = scale * (Float(codes[index]) - offset)
                    }
                  }
                }
              }
            }
          }
        }
      }
    }
    return out
  }

  /// The codes packed LSB-first, each row its own stream padded to a whole byte.
  public func packedBytes() throws(QuantizeError) -> [UInt8] {
    guard BitPacking.supportedBits.contains(bits) else {
      throw .unsupportedBits(quantizer: "BitPacking", bits: bits)
    }
    let bytesPerRow = BitPacking.byteCount(codes: columns, bits: bits)
    var out = [UInt8](repeating: 0, count: rows * bytesPerRow)
    codes.withUnsafeBufferPointer { codes in
      out.withUnsafeMutableBytes { raw in
        for row in 0..<rows {
          BitPacking.packStream(
            UnsafeBufferPointer(rebasing: codes[(row * columns)..<((row + 1) * columns)]),
            bits: bits,
            into: UnsafeMutableRawBufferPointer(
              rebasing: raw[(row * bytesPerRow)..<((row + 1) * bytesPerRow)]))
        }
      }
    }
    return out
  }

  /// The codes packed as MLX's U32 weight, [rows, columns * bits / 32].
  public func packedWords() throws(QuantizeError) -> [UInt32] {
    let codes = self.codes
    return try codes.withUnsafeBufferPointer { (buffer) throws(QuantizeError) -> [UInt32] in
      try BitPacking.packWords(buffer, rows: rows, columns: columns, bits: bits)
    }
  }
}
