/// A quantization grid the calibrated methods can target, one per pack-format grid family.
public enum CalibratedGrid: Sendable, Hashable, CustomStringConvertible {
  /// MLX's affine min/max grid (`AffineQuantizer`): w = scale * q + bias.
  case affine(bits: Int, groupSize: GroupSize)
  /// The signed absmax grid (`SymmetricQuantizer`, `.signed`): w = scale * (q - 2^(b-1)).
  case symmetric(bits: Int, groupSize: GroupSize)
  /// SPEED-Q's bilevel grid (`BilevelQuantizer`): min/max groups with 4-bit second-level scales.
  case bilevel(BilevelQuantizer.Configuration)

  public var bits: Int {
    switch self {
    case .affine(let bits, _), .symmetric(let bits, _): bits
    case .bilevel(let configuration): configuration.bits
    }
  }

  public var groupSize: GroupSize {
    switch self {
    case .affine(_, let groupSize), .symmetric(_, let groupSize): groupSize
    case .bilevel(let configuration): .elements(configuration.groupSize)
    }
  }

  public var description: String {
    switch self {
    case .affine(let bits, let groupSize): "affine w\(bits) \(groupSize)"
    case .symmetric(let bits, let groupSize): "symmetric w\(bits) \(groupSize)"
    case .bilevel(let configuration): "bilevel \(configuration)"
    }
  }

  /// Plain round-to-nearest on this grid, through the matching quantizer.
  public func roundToNearest(
    _ weights: UnsafeBufferPointer<Float>, rows: Int, columns: Int
  ) throws(QuantizeError) -> QuantizedMatrix {
    switch self {
    case .affine(let bits, let groupSize):
      try AffineQuantizer.quantize(
        weights, rows: rows, columns: columns, bits: bits, groupSize: groupSize)
    case .symmetric(let bits, let groupSize):
      try SymmetricQuantizer.quantize(
        weights, rows: rows, columns: columns, bits: bits, groupSize: groupSize)
    case .bilevel(let configuration):
      try BilevelQuantizer.quantize(
        weights, rows: rows, columns: columns, configuration: configuration)
    }
  }

  /// Checks the shape against the grid, as the matching quantizer would; returns the group length.
  func validatedGroupLength(rows: Int, columns: Int, operation: String) throws(QuantizeError) -> Int {
    switch self {
    case .affine(let bits, let groupSize):
      return try QCompute.validatedGroupLength(
        quantizer: operation, count: rows &* columns, rows: rows, columns: columns, bits: bits,
        allowedBits: AffineQuantizer.supportedBits, groupSize: groupSize)
    case .symmetric(let bits, let groupSize):
      return try QCompute.validatedGroupLength(
        quantizer: operation, count: rows &* columns, rows: rows, columns: columns, bits: bits,
        allowedBits: SymmetricQuantizer.supportedBits, groupSize: groupSize)
    case .bilevel(let configuration):
      let length = try QCompute.validatedGroupLength(
        quantizer: operation, count: rows &* columns, rows: rows, columns: columns,
        bits: configuration.bits, allowedBits: BilevelQuantizer.supportedBits,
        groupSize: .elements(configuration.groupSize))
      guard (1...8).contains(configuration.scaleBits) else {
        throw .unsupportedBits(quantizer: operation, bits: configuration.scaleBits)
      }
      // Column by column the second level must see whole chunks of one group index, so a
      // chunk of G scales has to be G consecutive output channels.
      guard configuration.scaleGroupSize > 0 else {
        throw .unsupportedGroupSize(quantizer: operation, groupSize: configuration.scaleGroupSize)
      }
      guard rows % configuration.scaleGroupSize == 0 else {
        throw .scaleCountNotDivisible(
          quantizer: operation, scales: rows, by: configuration.scaleGroupSize)
      }
      return length
    }
  }
}

/// The parameters of every group at one group index, fixed together, and the per-weight maps.
///
/// Arrays are indexed by row. For `bilevel`, `scales` holds the second-level (dequantized) scale.
struct GroupColumnParameters {
  var scales: [Float]
  var offsets: [Float]
  /// Bilevel only: first-level scales, 4-bit codes, and per-chunk step and zero.
  var unquantizedScales: [Float] = []
  var scaleCodes: [UInt8] = []
  var chunkScales: [Float] = []
  var chunkZeros: [Float] = []
}

extension CalibratedGrid {
  /// Fixes the parameters of one group index from `groups`, row-major [rows, length].
  func groupParameters(_ groups: UnsafeBufferPointer<Float>, rows: Int, length: Int)
    -> GroupColumnParameters
  {
    var scales = [Float](repeating: 0, count: rows)
    var offsets = [Float](repeating: 0, count: rows)
    guard let base = groups.baseAddress, length > 0 else {
      return GroupColumnParameters(scales: scales, offsets: offsets)
    }
    switch self {
    case .affine(let bits, _):
      let levels = Float((1 << bits) - 1)
      var scratch = [UInt8](repeating: 0, count: length)
      scratch.withUnsafeMutableBufferPointer { codes in
        for row in 0..<rows {
          let group = UnsafeBufferPointer(start: base + row &* length, count: length)
          let (scale, bias) = AffineQuantizer.quantizeGroup(group, levels: levels, into: codes)
          scales[row] = scale
          offsets[row] = bias
        }
      }
      return GroupColumnParameters(scales: scales, offsets: offsets)
    case .symmetric(let bits, _):
      let half = Float(1 << (bits - 1))
      for row in 0..<rows {
        let group = UnsafeBufferPointer(start: base + row &* length, count: length)
        scales[row] = SymmetricQuantizer.absoluteMaximum(group) / (half - 1)
        offsets[row] = half
      }
      return GroupColumnParameters(scales: scales, offsets: offsets)
    case .bilevel(let configuration):
      let levels = Float((1 << configuration.bits) - 1)
      var first = [Float](repeating: 0, count: rows)
      for row in 0..<rows {
        var (low, high) = minMax(UnsafeBufferPointer(start: base + row &* length, count: length))
        if low == high {
          low = -1
          high = 1
        }
        let scale = max((high - low) / levels, 1e-5)
        first[row] = scale
        offsets[row] = min(max((-low / scale).rounded(.toNearestOrEven), 0), levels)
      }
      let chunk = configuration.scaleGroupSize
      let scaleLevels = Float((1 << configuration.scaleBits) - 1)
      let chunkCount = rows / chunk
      var codes = [UInt8](repeating: 0, count: rows)
      var chunkScales = [Float](repeating: 0, count: chunkCount)
      var chunkZeros = [Float](repeating: 0, count: chunkCount)
      for chunkIndex in 0..<chunkCount {
        let range = (chunkIndex * chunk)..<((chunkIndex + 1) * chunk)
        var low = Float.infinity
        var high = -Float.infinity
        for row in range {
          low = min(low, first[row])
          high = max(high, first[row])
        }
        if low == high {
          low = -1
          high = 1
        }
        let step = max((high - low) / scaleLevels, 1e-5)
        let zero = -low / step
        chunkScales[chunkIndex] = step
        chunkZeros[chunkIndex] = zero
        for row in range {
          let code = min(max((first[row] / step + zero).rounded(.toNearestOrEven), 0), scaleLevels)
          codes[row] = UInt8(code)
          scales[row] = step * (code - zero)
        }
      }
      return GroupColumnParameters(
        scales: scales, offsets: offsets, unquantizedScales: first, scaleCodes: codes,
        chunkScales: chunkScales, chunkZeros: chunkZeros)
    }
  }

  /// The code of `value` in a group with `scale` and `offset`, as the matching quantizer rounds.
  @inline(__always)
  func code(_ value: Float, scale: Float, offset: Float, levels: Float) -> UInt8 {
    switch self {
    case .affine:
      return UInt8(min(max(((value - offset) / scale).rounded(.toNearestOrEven), 0), levels))
    case .symmetric:
      let half = offset
      let code = scale == 0 ? 0 : (value / scale).rounded(.toNearestOrEven)
      return UInt8(min(max(code, -half), half - 1) + half)
    case .bilevel:
      return UInt8(min(max((value / scale + offset).rounded(.toNearestOrEven), 0), levels))
    }
  }

  /// The value `QuantizedMatrix.dequantize` gives for `code`.
  @inline(__always)
  func restore(_ code: UInt8, scale: Float, offset: Float) -> Float {
    switch self {
    case .affine: scale * Float(code) + offset
    case .symmetric, .bilevel: scale * (Float(code) - offset)
    }
  }

  var method: QuantizedMatrix.Method {
    switch self {
    case .affine: .affine
    case .symmetric: .symmetric
    case .bilevel: .bilevel
    }
  }
}
