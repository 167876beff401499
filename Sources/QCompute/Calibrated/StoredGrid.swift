import QFormats

/// A layout's grid with every group's step and offset already fixed as its runtime stores them.
///
/// A method that decides codes on it (GPTQ) chooses among exactly the values the runtime will
/// read back, and the layout's writer stores those codes without rounding a second time: what
/// the method judged is what the runtime computes.
public struct StoredGrid: Sendable, Equatable {
  /// How the runtime turns a code into a weight.
  public enum Arithmetic: Sendable, Equatable {
    /// MLX's affine grid: scale * q + bias, the product and then the sum rounded to the dtype
    /// the scales are stored in (F16 or BF16; F32 rounds nothing).
    case mlxAffine(DType)
    /// ggml's Q4_0, Q5_0 and Q8_0: d * (q - zero) in f32; the block stores q - zero.
    case ggmlZero(Int)
    /// ggml's Q4_1 and Q5_1: d * q + m in f32.
    case ggmlMinimum
  }

  public let rows: Int
  public let columns: Int
  /// Elements sharing one step and offset, along each row.
  public let groupLength: Int
  /// Codes run over 0..<2^bits.
  public let bits: Int
  public let arithmetic: Arithmetic
  /// The step of each group, [rows, groupsPerRow], exactly as stored.
  public let scales: [Float]
  /// The bias (MLX) or minimum (Q4_1, Q5_1) of each group, as stored; zero for `ggmlZero`.
  public let offsets: [Float]

  /// - Throws: `QuantizeError` when the columns are not whole groups or the parameters do not
  ///   have one entry per group.
  public init(
    rows: Int, columns: Int, groupLength: Int, bits: Int, arithmetic: Arithmetic, scales: [Float],
    offsets: [Float]
  ) throws(QuantizeError) {
    guard groupLength > 0, columns % groupLength == 0 else {
      throw .columnsNotDivisible(quantizer: "stored grid", columns: columns, by: groupLength)
    }
    guard (1...8).contains(bits) else {
      throw .unsupportedBits(quantizer: "stored grid", bits: bits)
    }
    let groups = rows * (columns / groupLength)
    guard scales.count == groups, offsets.count == groups else {
      throw .elementCountMismatch(
        quantizer: "stored grid", expected: groups, actual: min(scales.count, offsets.count))
    }
    self.rows = rows
    self.columns = columns
    self.groupLength = groupLength
    self.bits = bits
    self.arithmetic = arithmetic
    self.scales = scales
    self.offsets = offsets
  }

  public var groupsPerRow: Int { columns / groupLength }
  public var largestCode: Int { (1 << bits) - 1 }

  /// The weight the runtime reads back for `code` in a group with `scale` and `offset`.
  @inline(__always)
  public func value(_ code: Int, scale: Float, offset: Float) -> Float {
    switch arithmetic {
    case .mlxAffine(let dtype):
      Self.round(Self.round(Float(code) * scale, to: dtype) + offset, to: dtype)
    case .ggmlZero(let zero): scale * Float(code - zero)
    case .ggmlMinimum: Float(code) * scale + offset
    }
  }

  /// The code whose stored value is nearest `weight`: clamp(round((w - offset) / scale)) on the
  /// stored parameters, then a neighbour either side compared in the runtime's arithmetic, which
  /// may round twice.
  @inline(__always)
  public func nearestCode(_ weight: Float, scale: Float, offset: Float) -> UInt8 {
    let top = largestCode
    let estimate: Float
    switch arithmetic {
    case .ggmlZero(let zero):
      estimate = scale == 0 ? Float(zero) : (weight / scale).rounded(.toNearestOrEven) + Float(zero)
    case .mlxAffine, .ggmlMinimum:
      estimate = scale == 0 ? 0 : ((weight - offset) / scale).rounded(.toNearestOrEven)
    }
    let center = estimate.isFinite ? Int(min(max(estimate, 0), Float(top))) : 0
    var best = center
    var bestError = abs(weight - value(center, scale: scale, offset: offset))
    for code in [center - 1, center + 1] where code >= 0 && code <= top {
      let error = abs(weight - value(code, scale: scale, offset: offset))
      if error < bestError {
        best = code
        bestError = error
      }
    }
    return UInt8(best)
  }

  /// Round to nearest on this grid: every weight's `nearestCode`, row-major.
  public func nearestCodes(_ weights: UnsafeBufferPointer<Float>) -> [UInt8] {
    var codes = [UInt8](repeating: 0, count: rows * columns)
    for index in 0..<min(weights.count, codes.count) {
      let group = index / columns * groupsPerRow + index % columns / groupLength
      codes[index] = nearestCode(weights[index], scale: scales[group], offset: offsets[group])
    }
    return codes
  }

  /// The weights the runtime reads back for `codes`, row-major.
  public func dequantize(_ codes: [UInt8]) -> [Float] {
    var out = [Float](repeating: 0, count: codes.count)
    for index in codes.indices {
      let group = index / columns * groupsPerRow + index % columns / groupLength
      out[index] = value(Int(codes[index]), scale: scales[group], offset: offsets[group])
    }
    return out
  }

  /// `value` rounded to `dtype` (nearest, ties to even) and widened back; F32 and others as is.
  @inline(__always)
  public static func round(_ value: Float, to dtype: DType) -> Float {
    switch dtype {
    case .f16: Float(Float16(value))
    case .bf16:
      value.isNaN
        ? value
        : Float(
          bitPattern: (value.bitPattern &+ 0x7FFF &+ ((value.bitPattern >> 16) & 1)) & 0xFFFF_0000)
    default: value
    }
  }
}

/// Codes a method decided on a stored grid: what a layout's writer stores as they are.
public struct StoredCodes: Sendable, Equatable {
  public var grid: StoredGrid
  /// One code per weight, row-major, each in 0...grid.largestCode.
  public var codes: [UInt8]

  public init(grid: StoredGrid, codes: [UInt8]) {
    self.grid = grid
    self.codes = codes
  }

  /// The weights the runtime reads back.
  public func dequantize() -> [Float] { grid.dequantize(codes) }

  /// Rows `range` as an affine (bias-form) matrix, for a packer of MLX's layout: codes, scales
  /// and offsets unchanged.
  public func affineRows(_ range: Range<Int>) -> QuantizedMatrix {
    let columns = grid.columns
    let groups = grid.groupsPerRow
    return QuantizedMatrix(
      method: .affine, bits: grid.bits, groupSize: .elements(grid.groupLength), rows: range.count,
      columns: columns,
      codes: Array(codes[(range.lowerBound * columns)..<(range.upperBound * columns)]),
      scales: Array(grid.scales[(range.lowerBound * groups)..<(range.upperBound * groups)]),
      offsets: Array(grid.offsets[(range.lowerBound * groups)..<(range.upperBound * groups)]),
      secondLevel: nil)
  }
}
