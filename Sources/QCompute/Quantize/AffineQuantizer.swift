/// Round-to-nearest on MLX's asymmetric min/max grid (`mlx.core.quantize`, mode "affine").
///
/// Follows MLX's reference CPU quantizer step for step so codes, scales and biases match it bit
/// for bit: the step is max((max - min) / (2^b - 1), 1e-7), its sign points from the edge with the
/// larger magnitude, and that edge is snapped to an exact code so w = scale * q + bias hits it (and
/// zero) exactly. MLX stores scales and biases in the weight's dtype: for F16 or BF16 weights cast
/// `scales` and `offsets` afterwards; the codes are computed from the f32 values, as MLX does.
public enum AffineQuantizer {
  /// MLX's widths but 1 and 7; a qpack holds those of `BitPacking.supportedBits`.
  public static let supportedBits: Set<Int> = BitPacking.streamBits

  public static func quantize(
    _ weights: UnsafeBufferPointer<Float>, rows: Int, columns: Int, bits: Int,
    groupSize: GroupSize
  ) throws(QuantizeError) -> QuantizedMatrix {
    let length = try validatedGroupLength(
      quantizer: "AffineQuantizer", count: weights.count, rows: rows, columns: columns, bits: bits,
      allowedBits: supportedBits, groupSize: groupSize)
    let levels = Float((1 << bits) - 1)
    let result = quantizeGroups(weights, rows: rows, columns: columns, groupLength: length) {
      group, codes in
      quantizeGroup(group, levels: levels, into: codes)
    }
    return QuantizedMatrix(
      method: .affine, bits: bits, groupSize: groupSize, rows: rows, columns: columns,
      codes: result.codes, scales: result.scales, offsets: result.offsets, secondLevel: nil)
  }

  @inline(__always)
  static func quantizeGroup(
    _ group: UnsafeBufferPointer<Float>, levels: Float, into codes: UnsafeMutableBufferPointer<UInt8>
  ) -> (scale: Float, offset: Float) {
    let epsilon: Float = 1e-7
    let (low, high) = minMax(group)
    let minimumIsEdge = abs(low) > abs(high)
    var scale = max((high - low) / levels, epsilon)
    scale = minimumIsEdge ? scale : -scale
    let edge = minimumIsEdge ? low : high
    // Once per group and possibly huge (a constant group divides by 1e-7): libm's rounding.
    let edgeCode = (edge / scale).rounded(.toNearestOrEven)
    var bias: Float = 0
    if edgeCode != 0 {
      scale = edge / edgeCode
      bias = edge
    }
    encodeCodes(group, bias: bias, scale: scale, levels: levels, into: codes)
    return (scale, bias)
  }

  /// Writes clamp(rint((w - bias) / scale), 0, levels) for every element, eight at a time.
  ///
  /// Clamping before rounding gives the same codes as MLX's round-then-clamp (the bounds are
  /// integers) and keeps the argument of `roundedToEven` inside its exact range.
  @inline(__always)
  static func encodeCodes(
    _ group: UnsafeBufferPointer<Float>, bias: Float, scale: Float, levels: Float,
    into codes: UnsafeMutableBufferPointer<UInt8>
  ) {
    guard let source = group.baseAddress, let target = codes.baseAddress else { return }
    let count = group.count
    var index = 0
    let biases = SIMD8<Float>(repeating: bias)
    let scales = SIMD8<Float>(repeating: scale)
    let zero = SIMD8<Float>(repeating: 0)
    let top = SIMD8<Float>(repeating: levels)
    while index &+ 8 <= count {
      let values = UnsafeRawPointer(source + index).loadUnaligned(as: SIMD8<Float>.self)
      var scaled = (values - biases) / scales
      scaled.replace(with: zero, where: scaled .< zero)
      scaled.replace(with: top, where: top .< scaled)
      let bytes = SIMD8<UInt8>(truncatingIfNeeded: roundedToEvenBits(scaled))
      UnsafeMutableRawPointer(target + index).storeBytes(of: bytes, as: SIMD8<UInt8>.self)
      index &+= 8
    }
    while index < count {
      let scaled = min(max((source[index] - bias) / scale, 0), levels)
      target[index] = UInt8(truncatingIfNeeded: roundedToEvenBits(scaled))
      index &+= 1
    }
  }
}

/// 1.5 * 2^23: adding it to |x| < 2^22 leaves rint(x) in the low mantissa bits.
let roundingMagic: Float = 12_582_912

/// rint(x) (half to even) for |x| < 2^22 without a libm call: the float addition rounds x to an
/// integer in the current (nearest-even) mode because the sum's unit in the last place is 1.
@inline(__always)
func roundedToEven(_ value: Float) -> Float {
  (value + roundingMagic) - roundingMagic
}

/// The bit pattern of x + 1.5 * 2^23, whose low 22 bits hold rint(x) for 0 <= x < 2^22.
@inline(__always)
func roundedToEvenBits(_ value: Float) -> UInt32 {
  (value + roundingMagic).bitPattern
}

/// Lane-wise `roundedToEvenBits`.
@inline(__always)
func roundedToEvenBits(_ values: SIMD8<Float>) -> SIMD8<UInt32> {
  unsafeBitCast(values + SIMD8(repeating: roundingMagic), to: SIMD8<UInt32>.self)
}

/// Lane-wise `roundedToEven`.
@inline(__always)
func roundedToEven(_ values: SIMD8<Float>) -> SIMD8<Float> {
  let magic = SIMD8<Float>(repeating: roundingMagic)
  return (values + magic) - magic
}
