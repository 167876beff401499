import QCompute
import QFormats

extension MLXAffineGrid {
  /// Edge shrinks tried, as `ClipSearchQuantizer`'s: max * (1 - i/20) and min * (1 - j/20) for
  /// i, j in 0..<10.
  static let shrinkFactors: [Float] = (0..<10).map { 1 - Float($0) / 20 }

  /// The clip search on MLX's own grid.
  ///
  /// For every shrink of a group's top and bottom edges, `mlx.core.quantize`'s round to nearest
  /// of the clamped group (`AffineQuantizer`), scored by squared error on the unclamped weights;
  /// per group the lowest error wins (the unshrunk grid, plain round to nearest, first). The
  /// winner is restated as MLX stores it, and wherever round to nearest's own stored grid reads
  /// back closer, that group keeps it, so no group is worse than `mlx.core.quantize`'s.
  ///
  /// With `importance` (one weight per column: the input energy calibration measured), each
  /// element's squared error counts by its column's weight, as GPTQ's output error would at a
  /// diagonal Hessian.
  public static func clipSearch(
    _ weights: UnsafeBufferPointer<Float>, rows: Int, columns: Int, bits: Int, groupSize: Int,
    scaleType: DType, importance: [Float]? = nil
  ) throws -> QuantizedMatrix {
    if let importance, importance.count != columns {
      throw QuantizeError.elementCountMismatch(quantizer: "MLX clip search importance", expected: columns, actual: importance.count)
    }
    let group = GroupSize.elements(groupSize)
    let rtn = try AffineQuantizer.quantize(weights, rows: rows, columns: columns, bits: bits, groupSize: group)
    let groups = rtn.scales.count
    var best = rtn
    var bestError = (0..<groups).map { squaredError(rtn, group: $0, weights: weights, importance: importance) }
    var lows = [Float](repeating: 0, count: groups)
    var highs = [Float](repeating: 0, count: groups)
    for index in 0..<groups {
      let members = weights[(index * groupSize)..<((index + 1) * groupSize)]
      lows[index] = members.min() ?? 0
      highs[index] = members.max() ?? 0
    }
    var clamped = [Float](repeating: 0, count: weights.count)
    for top in shrinkFactors {
      for bottom in shrinkFactors where top < 1 || bottom < 1 {
        for index in 0..<groups {
          let low = lows[index] * bottom
          let high = highs[index] * top
          for element in (index * groupSize)..<((index + 1) * groupSize) {
            clamped[element] = min(max(weights[element], low), high)
          }
        }
        let candidate = try clamped.withUnsafeBufferPointer {
          try AffineQuantizer.quantize($0, rows: rows, columns: columns, bits: bits, groupSize: group)
        }
        for index in 0..<groups {
          let error = squaredError(candidate, group: index, weights: weights, importance: importance)
          guard error < bestError[index] else { continue }
          bestError[index] = error
          best.scales[index] = candidate.scales[index]
          best.offsets[index] = candidate.offsets[index]
          let range = (index * groupSize)..<((index + 1) * groupSize)
          best.codes.replaceSubrange(range, with: candidate.codes[range])
        }
      }
    }
    var stored = MLXAffineGrid.stored(best, weights: weights, scaleType: scaleType)
    let storedRTN = MLXAffineGrid.stored(rtn, weights: weights, scaleType: scaleType, keepCodes: true)
    for index in 0..<groups
    where storedError(storedRTN, group: index, weights: weights, scaleType: scaleType, importance: importance)
      <= storedError(stored, group: index, weights: weights, scaleType: scaleType, importance: importance)
    {
      stored.scales[index] = storedRTN.scales[index]
      stored.offsets[index] = storedRTN.offsets[index]
      let range = (index * groupSize)..<((index + 1) * groupSize)
      stored.codes.replaceSubrange(range, with: storedRTN.codes[range])
    }
    return stored
  }

  /// Squared error of one group of an affine (bias-form) grid in f32, as the search scores it,
  /// each element's by its column's importance when given.
  static func squaredError(
    _ matrix: QuantizedMatrix, group: Int, weights: UnsafeBufferPointer<Float>, importance: [Float]? = nil
  ) -> Float {
    let length = matrix.groupLength
    let scale = matrix.scales[group]
    let bias = matrix.offsets[group]
    var total: Float = 0
    for element in (group * length)..<((group + 1) * length) {
      let difference = weights[element] - (scale * Float(matrix.codes[element]) + bias)
      total += difference * difference * (importance?[element % matrix.columns] ?? 1)
    }
    return total
  }

  /// Squared error of one group as MLX reads it back, weighted as `squaredError`.
  static func storedError(
    _ matrix: QuantizedMatrix, group: Int, weights: UnsafeBufferPointer<Float>, scaleType: DType,
    importance: [Float]? = nil
  ) -> Float {
    let length = matrix.groupLength
    var total: Float = 0
    for element in (group * length)..<((group + 1) * length) {
      let difference =
        weights[element] - value(Int(matrix.codes[element]), matrix.scales[group], matrix.offsets[group], scaleType)
      total += difference * difference * (importance?[element % matrix.columns] ?? 1)
    }
    return total
  }

  /// The clip search's grid (weighted by `importance`) as GPTQ decides on it: each group's scale
  /// and bias exactly as MLX stores them.
  public static func clipSearchedGrid(
    _ weights: UnsafeBufferPointer<Float>, rows: Int, columns: Int, bits: Int, groupSize: Int, scaleType: DType,
    importance: [Float]?
  ) throws -> StoredGrid {
    let searched = try clipSearch(
      weights, rows: rows, columns: columns, bits: bits, groupSize: groupSize, scaleType: scaleType,
      importance: importance)
    return try StoredGrid(
      rows: rows, columns: columns, groupLength: groupSize, bits: bits, arithmetic: .mlxAffine(scaleType),
      scales: searched.scales, offsets: searched.offsets)
  }
}
