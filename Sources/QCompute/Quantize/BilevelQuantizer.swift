/// SPEED-Q's bilevel grid: asymmetric min/max groups whose scales are themselves quantized to
/// 4 bits, asymmetrically, in chunks of consecutive scales taken in group-index-major order.
///
/// The zero point is rounded from the unquantized scale while the codes use the second-level
/// scale; that order is the reference's and is kept. Rounding is half to even throughout.
public enum BilevelQuantizer {
  /// The three numbers that name a bilevel setting, as in "w2g16g16".
  public struct Configuration: Sendable, Hashable, CustomStringConvertible {
    public var bits: Int
    /// First-level group length along the input dimension.
    public var groupSize: Int
    /// How many consecutive first-level scales share one second-level step and zero.
    public var scaleGroupSize: Int
    public var scaleBits: Int

    public init(bits: Int, groupSize: Int, scaleGroupSize: Int, scaleBits: Int = 4) {
      self.bits = bits
      self.groupSize = groupSize
      self.scaleGroupSize = scaleGroupSize
      self.scaleBits = scaleBits
    }

    /// 2-bit codes, groups of 16, second-level groups of 16 scales.
    public static let w2g16g16 = Configuration(bits: 2, groupSize: 16, scaleGroupSize: 16)
    /// 4-bit codes, groups of 32, second-level groups of 128 scales.
    public static let w4g32g128 = Configuration(bits: 4, groupSize: 32, scaleGroupSize: 128)

    public var description: String { "w\(bits)g\(groupSize)g\(scaleGroupSize)" }
  }

  public static let supportedBits: Set<Int> = [2, 3, 4, 8]

  public static func quantize(
    _ weights: UnsafeBufferPointer<Float>, rows: Int, columns: Int, configuration: Configuration
  ) throws(QuantizeError) -> QuantizedMatrix {
    let quantizer = "BilevelQuantizer"
    let bits = configuration.bits
    let length = try validatedGroupLength(
      quantizer: quantizer, count: weights.count, rows: rows, columns: columns, bits: bits,
      allowedBits: supportedBits, groupSize: .elements(configuration.groupSize))
    guard (1...8).contains(configuration.scaleBits) else {
      throw .unsupportedBits(quantizer: quantizer, bits: configuration.scaleBits)
    }
    let chunk = configuration.scaleGroupSize
    guard chunk > 0 else { throw .unsupportedGroupSize(quantizer: quantizer, groupSize: chunk) }
    let groupsPerRow = columns / length
    let scaleCount = rows * groupsPerRow
    guard scaleCount % chunk == 0 else {
      throw .scaleCountNotDivisible(quantizer: quantizer, scales: scaleCount, by: chunk)
    }
    let levels = Float((1 << bits) - 1)

    // First level: min/max scale and integer zero per group, matrix order.
    let first = quantizeGroups(weights, rows: rows, columns: columns, groupLength: length) {
      group, _ in
      var (low, high) = minMax(group)
      if low == high {
        low = -1
        high = 1
      }
      let scale = max((high - low) / levels, 1e-5)
      let zero = min(max((-low / scale).rounded(.toNearestOrEven), 0), levels)
      return (scale, zero)
    }

    // Second level over the scales in group-index-major order: entry j * rows + r.
    let scaleLevels = Float((1 << configuration.scaleBits) - 1)
    let chunkCount = scaleCount / chunk
    var scaleCodes = [UInt8](repeating: 0, count: scaleCount)
    var chunkScales = [Float](repeating: 0, count: chunkCount)
    var chunkZeros = [Float](repeating: 0, count: chunkCount)
    var quantizedScales = [Float](repeating: 0, count: scaleCount)
    @inline(__always) func matrixIndex(_ ordered: Int) -> Int {
      (ordered % rows) * groupsPerRow + ordered / rows
    }
    for chunkIndex in 0..<chunkCount {
      let range = (chunkIndex * chunk)..<((chunkIndex + 1) * chunk)
      var low = Float.infinity
      var high = -Float.infinity
      for ordered in range {
        let scale = first.scales[matrixIndex(ordered)]
        low = min(low, scale)
        high = max(high, scale)
      }
      if low == high {
        low = -1
        high = 1
      }
      let step = max((high - low) / scaleLevels, 1e-5)
      let zero = -low / step
      chunkScales[chunkIndex] = step
      chunkZeros[chunkIndex] = zero
      for ordered in range {
        let index = matrixIndex(ordered)
        let code = min(max((first.scales[index] / step + zero).rounded(.toNearestOrEven), 0), scaleLevels)
        scaleCodes[ordered] = UInt8(code)
        quantizedScales[index] = step * (code - zero)
      }
    }

    // Codes against the second-level scales and the first-level zeros.
    var codes = [UInt8](repeating: 0, count: rows * columns)
    quantizedScales.withUnsafeBufferPointer { scales in
      first.offsets.withUnsafeBufferPointer { zeros in
        codes.withUnsafeMutableBufferPointer { codeBuffer in
          guard let codeBase = codeBuffer.baseAddress else { return }
          let target = SendableMutablePointer(codeBase)
          forEachRowBlock(rows: rows, elementsPerRow: columns) { rowRange in
            let codes = target.pointer
            for row in rowRange {
              for group in 0..<groupsPerRow {
                let scale = scales[row &* groupsPerRow &+ group]
                let zero = zeros[row &* groupsPerRow &+ group]
                let start = row &* columns &+ group &* length
                for index in start..<(start &+ length) {
                  let code = (weights[index] / scale + zero).rounded(.toNearestOrEven)
                  codes[index] = UInt8(min(max(code, 0), levels))
                }
              }
            }
          }
        }
      }
    }
    return QuantizedMatrix(
      method: .bilevel, bits: bits, groupSize: .elements(length), rows: rows, columns: columns,
      codes: codes, scales: quantizedScales, offsets: first.offsets,
      secondLevel: .init(
        bits: configuration.scaleBits, chunkSize: chunk, codes: scaleCodes,
        chunkScales: chunkScales, chunkZeros: chunkZeros, unquantizedScales: first.scales))
  }
}
