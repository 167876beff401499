/// Min/max quantization after searching, per group, for the shrink of the top and bottom edges
/// that minimises the squared weight error (SPEED-Q's clip initialisation without activations).
///
/// Candidates are max * (1 - i/20) and min * (1 - j/20) for i, j in 0..<10 (down to 0.55); each
/// is scored with BitDistiller's plain asymmetric quantizer on the clamped group, against the
/// unclamped weights. The first best candidate wins (top shrink outer, bottom shrink inner).
///
/// Constant groups deviate from the reference on purpose. SPEED-Q's clip search and BitDistiller's
/// `pseudo_quantize_tensor` give a group with min == max a grid of width 1e-5 whose zero point is
/// clamped to the code range, so any constant other than 0 comes back as about +-1e-5 (and a row
/// of length 1 always does). Constant groups are norm weights, biases folded into matrices and
/// padding rows, where that error is total; here such a group gets step |value| and zero 0 (or 1
/// for a negative value), so code 1 (or 0) restores the value exactly.
public enum ClipSearchQuantizer {
  public static let supportedBits: Set<Int> = [2, 3, 4, 8]
  /// Grid resolution and the number of steps tried, as the reference's n_grid=20, max_shrink=0.5.
  static let gridSteps = 20
  static let shrinkSteps = 10

  public static func quantize(
    _ weights: UnsafeBufferPointer<Float>, rows: Int, columns: Int, bits: Int,
    groupSize: GroupSize
  ) throws(QuantizeError) -> QuantizedMatrix {
    let length = try validatedGroupLength(
      quantizer: "ClipSearchQuantizer", count: weights.count, rows: rows, columns: columns,
      bits: bits, allowedBits: supportedBits, groupSize: groupSize)
    let levels = Float((1 << bits) - 1)
    let factors = (0..<shrinkSteps).map { Float(1 - Double($0) / Double(gridSteps)) }
    let result = quantizeGroups(weights, rows: rows, columns: columns, groupLength: length) {
      group, codes in
      let (low, high) = minMax(group)
      if low == high, low != 0 {
        let code: UInt8 = low > 0 ? 1 : 0
        for index in 0..<group.count { codes[index] = code }
        return (abs(low), low > 0 ? 0 : 1)
      }
      var bestError = Double.infinity
      var bestBounds = (low: low, high: high)
      for topFactor in factors {
        for bottomFactor in factors {
          let top = high * topFactor
          let bottom = low * bottomFactor
          let grid = gridFor(low: low, high: high, bottom: bottom, top: top, levels: levels)
          var error = 0.0
          for value in group {
            let difference = grid.restore(min(max(value, bottom), top)) - value
            error += Double(difference * difference)
          }
          if error < bestError {
            bestError = error
            bestBounds = (bottom, top)
          }
        }
      }
      let grid = gridFor(
        low: low, high: high, bottom: bestBounds.low, top: bestBounds.high, levels: levels)
      for index in 0..<group.count {
        codes[index] = UInt8(grid.code(min(max(group[index], bestBounds.low), bestBounds.high)))
      }
      return (grid.scale, grid.zero)
    }
    return QuantizedMatrix(
      method: .clipSearch, bits: bits, groupSize: groupSize, rows: rows, columns: columns,
      codes: result.codes, scales: result.scales, offsets: result.offsets, secondLevel: nil)
  }

  /// BitDistiller's `pseudo_quantize_tensor` grid for a group clamped to [bottom, top].
  struct Grid {
    var scale: Float
    var zero: Float
    var levels: Float

    @inline(__always) func code(_ value: Float) -> Float {
      min(max((value / scale).rounded(.toNearestOrEven) + zero, 0), levels)
    }

    @inline(__always) func restore(_ value: Float) -> Float {
      (code(value) - zero) * scale
    }
  }

  @inline(__always)
  static func gridFor(low: Float, high: Float, bottom: Float, top: Float, levels: Float) -> Grid {
    // The clamped group's own extremes, as the reference takes amax/amin after clamping.
    let clampedLow = min(max(low, bottom), top)
    let clampedHigh = min(max(high, bottom), top)
    let scale = max(clampedHigh - clampedLow, 1e-5) / levels
    let zero = min(max(-(clampedLow / scale).rounded(.toNearestOrEven), 0), levels)
    return Grid(scale: scale, zero: zero, levels: levels)
  }
}
