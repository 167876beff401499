/// SPEED-Q's asymmetric clip search with calibration: per group, the shrink of the top and bottom
/// edges whose quantization error on the layer's output, Δwᵀ H_g Δw, is smallest.
///
/// H_g is the g × g diagonal block of H = Xᵀ X / T for the group's input columns; the search's
/// reference error mean_t (x_t · Δw)² is exactly that, so one Gram matrix replaces the token loop
/// (any positive multiple of H gives the same choice). Candidates, grid and tie order are
/// `ClipSearchQuantizer`'s: max * (1 - i/20) and min * (1 - j/20) for i, j in 0..<10, BitDistiller's
/// plain asymmetric grid on the clamped group, error against the unclamped weights, first best wins.
public enum GramClipSearch {
  public struct Result: Sendable {
    /// The weights quantized on each group's best clipped grid (`method == .clipSearch`).
    public var quantized: QuantizedMatrix
    /// The weights hard-clamped to each group's best range: SPEED-Q's initialisation for QAT.
    public var clippedWeights: [Float]
    /// The chosen bottom and top of each group, [rows, groupsPerRow].
    public var lowerBounds: [Float]
    public var upperBounds: [Float]
  }

  /// Searches every group of `[rows, columns]` row-major `weights` under `hessian`.
  /// - Throws: `CalibrationError.grid` for an unsupported bit width or group size,
  ///   `.hessianShapeMismatch` when `hessian` is not `columns` × `columns`.
  public static func quantize<Scalar: LinalgScalar>(
    _ weights: UnsafeBufferPointer<Float>, rows: Int, columns: Int, hessian: Matrix<Scalar>,
    bits: Int, groupSize: GroupSize
  ) throws(CalibrationError) -> Result {
    let operation = "GramClipSearch"
    let length: Int
    do {
      length = try validatedGroupLength(
        quantizer: operation, count: weights.count, rows: rows, columns: columns, bits: bits,
        allowedBits: ClipSearchQuantizer.supportedBits, groupSize: groupSize)
    } catch { throw .grid(error) }
    guard hessian.rows == columns, hessian.columns == columns else {
      throw .hessianShapeMismatch(
        operation: operation, rows: hessian.rows, columns: hessian.columns, weightColumns: columns)
    }
    let groups = length == 0 ? 0 : columns / length
    // The diagonal blocks, group after group, each length x length.
    var blocks = [Double](repeating: 0, count: groups * length * length)
    for group in 0..<groups {
      for i in 0..<length {
        for j in 0..<length {
          blocks[(group * length + i) * length + j] = Double(
            hessian[group * length + i, group * length + j])
        }
      }
    }
    let levels = Float((1 << bits) - 1)
    let factors = (0..<ClipSearchQuantizer.shrinkSteps).map {
      Float(1 - Double($0) / Double(ClipSearchQuantizer.gridSteps))
    }
    var codes = [UInt8](repeating: 0, count: rows * columns)
    var clipped = [Float](repeating: 0, count: rows * columns)
    var scales = [Float](repeating: 0, count: rows * groups)
    var zeros = scales
    var lower = scales
    var upper = scales
    codes.withUnsafeMutableBufferPointer { codes in
      clipped.withUnsafeMutableBufferPointer { clipped in
        scales.withUnsafeMutableBufferPointer { scales in
          zeros.withUnsafeMutableBufferPointer { zeros in
            lower.withUnsafeMutableBufferPointer { lower in
              upper.withUnsafeMutableBufferPointer { upper in
                blocks.withUnsafeBufferPointer { blocks in
                  guard let codes = codes.baseAddress, let clipped = clipped.baseAddress,
                    let scales = scales.baseAddress, let zeros = zeros.baseAddress,
                    let lower = lower.baseAddress, let upper = upper.baseAddress
                  else { return }
                  let outputs = GroupOutputs(
                    codes: SendableMutablePointer(codes), clipped: SendableMutablePointer(clipped),
                    scales: SendableMutablePointer(scales), zeros: SendableMutablePointer(zeros),
                    lower: SendableMutablePointer(lower), upper: SendableMutablePointer(upper))
                  forEachRowBlock(rows: rows, elementsPerRow: columns * 100) { rowRange in
                    var difference = [Double](repeating: 0, count: length)
                    for row in rowRange {
                      for group in 0..<groups {
                        let start = row * columns + group * length
                        let values = UnsafeBufferPointer(rebasing: weights[start..<(start + length)])
                        let block = UnsafeBufferPointer(
                          rebasing: blocks[(group * length * length)..<((group + 1) * length * length)])
                        let (bottom, top) = bestBounds(
                          values, block: block, factors: factors, levels: levels,
                          difference: &difference)
                        outputs.write(
                          values, start: start, index: row * groups + group, bottom: bottom,
                          top: top, levels: levels)
                      }
                    }
                  }
                }
              }
            }
          }
        }
      }
    }
    let quantized = QuantizedMatrix(
      method: .clipSearch, bits: bits, groupSize: groupSize, rows: rows, columns: columns,
      codes: codes, scales: scales, offsets: zeros, secondLevel: nil)
    return Result(
      quantized: quantized, clippedWeights: clipped, lowerBounds: lower, upperBounds: upper)
  }

  /// Row-major `[Float]` convenience; see the buffer form.
  public static func quantize<Scalar: LinalgScalar>(
    _ weights: [Float], rows: Int, columns: Int, hessian: Matrix<Scalar>, bits: Int,
    groupSize: GroupSize
  ) throws(CalibrationError) -> Result {
    try weights.withUnsafeBufferPointer { (buffer) throws(CalibrationError) -> Result in
      try quantize(
        buffer, rows: rows, columns: columns, hessian: hessian, bits: bits, groupSize: groupSize)
    }
  }

  /// The first (bottom, top) with the smallest Δwᵀ H_g Δw, top shrink outer, bottom inner.
  static func bestBounds(
    _ values: UnsafeBufferPointer<Float>, block: UnsafeBufferPointer<Double>, factors: [Float],
    levels: Float, difference: inout [Double]
  ) -> (bottom: Float, top: Float) {
    let (low, high) = minMax(values)
    let length = values.count
    var bestError = Double.infinity
    var best = (bottom: low, top: high)
    for topFactor in factors {
      for bottomFactor in factors {
        let top = high * topFactor
        let bottom = low * bottomFactor
        let grid = ClipSearchQuantizer.gridFor(
          low: low, high: high, bottom: bottom, top: top, levels: levels)
        for i in 0..<length {
          difference[i] = Double(grid.restore(min(max(values[i], bottom), top)) - values[i])
        }
        var error = 0.0
        for i in 0..<length {
          var inner = 0.0
          let rowStart = i &* length
          for j in 0..<length { inner += block[rowStart &+ j] * difference[j] }
          error += difference[i] * inner
        }
        if error < bestError {
          bestError = error
          best = (bottom, top)
        }
      }
    }
    return best
  }
}

/// Where the clip search writes one group's results; rows go to disjoint ranges.
private struct GroupOutputs: Sendable {
  var codes: SendableMutablePointer<UInt8>
  var clipped: SendableMutablePointer<Float>
  var scales: SendableMutablePointer<Float>
  var zeros: SendableMutablePointer<Float>
  var lower: SendableMutablePointer<Float>
  var upper: SendableMutablePointer<Float>

  func write(
    _ values: UnsafeBufferPointer<Float>, start: Int, index: Int, bottom: Float, top: Float,
    levels: Float
  ) {
    let (codes, clipped, scales) = (codes.pointer, clipped.pointer, scales.pointer)
    let (zeros, lower, upper) = (zeros.pointer, lower.pointer, upper.pointer)
    let (low, high) = minMax(values)
    let grid = ClipSearchQuantizer.gridFor(
      low: low, high: high, bottom: bottom, top: top, levels: levels)
    for i in 0..<values.count {
      let value = min(max(values[i], bottom), top)
      clipped[start &+ i] = value
      codes[start &+ i] = UInt8(grid.code(value))
    }
    scales[index] = grid.scale
    zeros[index] = grid.zero
    lower[index] = bottom
    upper[index] = top
  }
}
