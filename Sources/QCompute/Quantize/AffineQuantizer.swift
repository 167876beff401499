/// Round-to-nearest on MLX's asymmetric min/max grid (`mlx.core.quantize`, mode "affine").
///
/// Follows MLX's reference CPU quantizer step for step so codes, scales and biases match it bit
/// for bit: the step is max((max - min) / (2^b - 1), 1e-7), its sign points from the edge with the
/// larger magnitude, and that edge is snapped to an exact code so w = scale * q + bias hits it (and
/// zero) exactly. MLX stores scales and biases in the weight's dtype: for F16 or BF16 weights cast
/// `scales` and `offsets` afterwards; the codes are computed from the f32 values, as MLX does.
public enum AffineQuantizer {
  public static let supportedBits: Set<Int> = [2, 3, 4, 8]

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
    let edgeCode = (edge / scale).rounded(.toNearestOrEven)
    var bias: Float = 0
    if edgeCode != 0 {
      scale = edge / edgeCode
      bias = edge
    }
    for index in 0..<group.count {
      let code = ((group[index] - bias) / scale).rounded(.toNearestOrEven)
      codes[index] = UInt8(min(max(code, 0), levels))
    }
    return (scale, bias)
  }
}
