import QCompute
import QFormats

/// MLX's affine grid as MLX stores and reads it: w = scale * q + bias per group, with the scale
/// and bias in the weight's dtype (F16, BF16, or F32 for other types).
///
/// A method (round to nearest, a clip search, HQQ) decides its grid in f32; `stored(_:weights:scaleType:)`
/// restates it as MLX will hold it and re-chooses each code as the nearest on that stored grid, so
/// the weights the method is judged by are the weights `mlx.core.dequantize` gives back.
public enum MLXAffineGrid {
  /// Restates `decided` on MLX's stored grid.
  ///
  /// Zero points become biases (bias = -scale * zero), scales and biases are rounded to
  /// `scaleType`, and every code is re-chosen as clamp(round((w - bias) / scale)) on the rounded
  /// grid. A matrix already in bias form with untouched codes (round to nearest, whose codes MLX
  /// computes from the f32 grid) keeps its codes when `keepCodes` is set.
  public static func stored(
    _ decided: QuantizedMatrix, weights: UnsafeBufferPointer<Float>, scaleType: DType, keepCodes: Bool = false
  ) -> QuantizedMatrix {
    var out = decided
    let isBias = decided.offsetKind == .bias
    var biases = decided.offsets
    if !isBias {
      for index in biases.indices { biases[index] = -decided.scales[index] * decided.offsets[index] }
    }
    out.scales = decided.scales.map { round($0, to: scaleType) }
    out.offsets = biases.map { round($0, to: scaleType) }
    out.method = .affine
    if keepCodes { return out }
    let length = decided.groupLength
    let groups = decided.groupsPerRow
    let top = (1 << decided.bits) - 1
    for row in 0..<decided.rows {
      for group in 0..<groups {
        let scale = out.scales[row * groups + group]
        let bias = out.offsets[row * groups + group]
        let start = row * decided.columns + group * length
        for index in start..<(start + length) {
          let weight = weights[index]
          let estimate = scale == 0 ? 0 : ((weight - bias) / scale).rounded(.toNearestOrEven)
          let center = estimate.isFinite ? Int(min(max(estimate, 0), Float(top))) : 0
          // The nearest in MLX's own arithmetic, which rounds twice: one code either side of
          // the f32 estimate settles it.
          var best = center
          var bestError = abs(weight - value(center, scale, bias, scaleType))
          for code in [center - 1, center + 1] where code >= 0 && code <= top {
            let error = abs(weight - value(code, scale, bias, scaleType))
            if error < bestError {
              best = code
              bestError = error
            }
          }
          out.codes[index] = UInt8(best)
        }
      }
    }
    return out
  }

  /// One weight as MLX dequantizes it.
  @inline(__always)
  static func value(_ code: Int, _ scale: Float, _ bias: Float, _ scaleType: DType) -> Float {
    round(round(Float(code) * scale, to: scaleType) + bias, to: scaleType)
  }

  /// What `mlx.core.dequantize` gives for a stored grid, in its arithmetic: the code times the
  /// scale rounded to the scale's dtype, plus the bias rounded again (MLX's CPU fallback
  /// multiplies and adds as two operations in that dtype).
  public static func dequantize(_ stored: QuantizedMatrix, scaleType: DType) -> [Float] {
    let length = stored.groupLength
    let groups = stored.groupsPerRow
    var out = [Float](repeating: 0, count: stored.rows * stored.columns)
    for row in 0..<stored.rows {
      for group in 0..<groups {
        let scale = stored.scales[row * groups + group]
        let bias = stored.offsets[row * groups + group]
        let start = row * stored.columns + group * length
        for index in start..<(start + length) {
          out[index] = value(Int(stored.codes[index]), scale, bias, scaleType)
        }
      }
    }
    return out
  }

  /// `value` rounded to `dtype` (nearest, ties to even) and widened back.
  @inline(__always)
  public static func round(_ value: Float, to dtype: DType) -> Float {
    StoredGrid.round(value, to: dtype)
  }

  /// The grid `mlx.core.quantize` chooses for `[rows, columns]` weights (its round to
  /// nearest's scales and biases), as MLX stores them in `scaleType`: the grid GPTQ decides
  /// codes on for the MLX layout.
  public static func storedGrid(
    _ weights: UnsafeBufferPointer<Float>, rows: Int, columns: Int, bits: Int, groupSize: Int, scaleType: DType
  ) throws -> StoredGrid {
    let decided = try AffineQuantizer.quantize(
      weights, rows: rows, columns: columns, bits: bits, groupSize: .elements(groupSize))
    let grid = stored(decided, weights: weights, scaleType: scaleType, keepCodes: true)
    return try StoredGrid(
      rows: rows, columns: columns, groupLength: groupSize, bits: bits, arithmetic: .mlxAffine(scaleType),
      scales: grid.scales, offsets: grid.offsets)
  }
}
