/// Round-to-nearest on grids centred on zero, for weights whose distribution is symmetric.
public enum SymmetricQuantizer {
  public enum Variant: String, Sendable, CaseIterable {
    /// scale = absmax / (2^(b-1) - 1), signed codes in [-2^(b-1), 2^(b-1) - 1] stored plus 2^(b-1).
    /// A constant group uses scale = |value| and code +-1 instead, so it comes back exactly.
    case signed
    /// SPEED-Q's embedding and lm_head grid: scale = max(2 * absmax / (2^b - 1), 1e-5), zero fixed
    /// at 2^(b-1) - 1 (7 at 4 bits), q = clamp(round(w / scale + zero), 0, 2^b - 1). The reference
    /// runs in fp16; this runs in f32.
    case embedding
  }

  public static let supportedBits: Set<Int> = [2, 3, 4, 8]

  public static func quantize(
    _ weights: UnsafeBufferPointer<Float>, rows: Int, columns: Int, bits: Int,
    groupSize: GroupSize, variant: Variant = .signed
  ) throws(QuantizeError) -> QuantizedMatrix {
    let length = try validatedGroupLength(
      quantizer: "SymmetricQuantizer", count: weights.count, rows: rows, columns: columns,
      bits: bits, allowedBits: supportedBits, groupSize: groupSize)
    let result: GroupedResult
    switch variant {
    case .signed:
      let half = Float(1 << (bits - 1))
      result = quantizeGroups(weights, rows: rows, columns: columns, groupLength: length) {
        group, codes in
        let absMax = absoluteMaximum(group)
        // A group with one distinct value keeps it as code +-1 with the value as the step,
        // exactly; absmax / (2^(b-1) - 1) times the code can land one ulp away (65504 at 8 bits).
        if absMax > 0, isConstant(group) {
          for index in 0..<group.count { codes[index] = UInt8(half + (group[index] < 0 ? -1 : 1)) }
          return (absMax, half)
        }
        let scale = absMax / (half - 1)
        for index in 0..<group.count {
          let code = scale == 0 ? 0 : (group[index] / scale).rounded(.toNearestOrEven)
          codes[index] = UInt8(min(max(code, -half), half - 1) + half)
        }
        return (scale, half)
      }
    case .embedding:
      let levels = Float((1 << bits) - 1)
      let zero = Float((1 << (bits - 1)) - 1)
      result = quantizeGroups(weights, rows: rows, columns: columns, groupLength: length) {
        group, codes in
        let scale = max(2 * absoluteMaximum(group) / levels, 1e-5)
        for index in 0..<group.count {
          let code = (group[index] / scale + zero).rounded(.toNearestOrEven)
          codes[index] = UInt8(min(max(code, 0), levels))
        }
        return (scale, zero)
      }
    }
    return QuantizedMatrix(
      method: variant == .signed ? .symmetric : .symmetricEmbedding, bits: bits,
      groupSize: groupSize, rows: rows, columns: columns, codes: result.codes,
      scales: result.scales, offsets: result.offsets, secondLevel: nil)
  }

  /// Whether every element of a non-empty group is the same value.
  @inline(__always)
  static func isConstant(_ values: UnsafeBufferPointer<Float>) -> Bool {
    guard let first = values.first else { return false }
    for value in values where value != first { return false }
    return true
  }

  @inline(__always)
  static func absoluteMaximum(_ values: UnsafeBufferPointer<Float>) -> Float {
    var result: Float = 0
    for value in values { result = max(result, abs(value)) }
    return result
  }
}
