/// How much quantizing one weight alone disturbs its layer's output, from the calibration Hessian.
public enum Sensitivity {
  /// tr((W - W') H (W - W')ᵀ): the summed squared output error over the calibration tokens
  /// when H = Xᵀ X (the mean when H = Xᵀ X / T).
  /// - Throws: `CalibrationError.hessianShapeMismatch`, or `.grid(.elementCountMismatch)` when a
  ///   weight buffer is not `rows * columns` long.
  public static func outputError<Scalar: LinalgScalar>(
    reference: [Float], approximation: [Float], rows: Int, columns: Int, hessian: Matrix<Scalar>
  ) throws(CalibrationError) -> Double {
    let operation = "Sensitivity"
    for buffer in [reference, approximation] where buffer.count != rows &* columns {
      throw .grid(
        .elementCountMismatch(quantizer: operation, expected: rows &* columns, actual: buffer.count))
    }
    let delta = zip(reference, approximation).map { Double($0) - Double($1) }
    return try quadraticForm(delta, rows: rows, columns: columns, hessian: hessian)
  }

  /// tr((W - Q) H (W - Q)ᵀ) / tr(W H Wᵀ) for round-to-nearest `Q` on `grid`; 0 for a zero output.
  public static func relativeOutputError<Scalar: LinalgScalar>(
    weights: [Float], rows: Int, columns: Int, hessian: Matrix<Scalar>, grid: CalibratedGrid
  ) throws(CalibrationError) -> Double {
    let quantized: QuantizedMatrix
    do {
      quantized = try weights.withUnsafeBufferPointer { (buffer) throws(QuantizeError) in
        try grid.roundToNearest(buffer, rows: rows, columns: columns)
      }
    } catch { throw .grid(error) }
    return try relativeOutputError(
      weights: weights, quantized: quantized, hessian: hessian)
  }

  /// tr((W - Q) H (W - Q)ᵀ) / tr(W H Wᵀ) for an already quantized `Q` (GPTQ, clip search, ...).
  public static func relativeOutputError<Scalar: LinalgScalar>(
    weights: [Float], quantized: QuantizedMatrix, hessian: Matrix<Scalar>
  ) throws(CalibrationError) -> Double {
    let (rows, columns) = (quantized.rows, quantized.columns)
    let error = try outputError(
      reference: weights, approximation: quantized.dequantize(), rows: rows, columns: columns,
      hessian: hessian)
    let signal = try quadraticForm(
      weights.map(Double.init), rows: rows, columns: columns, hessian: hessian)
    return signal > 0 ? error / signal : 0
  }

  /// Σ_r d_r H d_rᵀ for the rows d_r of a row-major [rows, columns] matrix, with one GEMM.
  static func quadraticForm<Scalar: LinalgScalar>(
    _ values: [Double], rows: Int, columns: Int, hessian: Matrix<Scalar>
  ) throws(CalibrationError) -> Double {
    guard hessian.rows == columns, hessian.columns == columns else {
      throw .hessianShapeMismatch(
        operation: "Sensitivity", rows: hessian.rows, columns: hessian.columns,
        weightColumns: columns)
    }
    if rows == 0 || columns == 0 { return 0 }
    let h = hessian.elements.map { Double($0) }
    var product = [Double](repeating: 0, count: rows * columns)
    do {
      try values.withUnsafeBufferPointer { (d) throws(ComputeError) in
        try h.withUnsafeBufferPointer { (h) throws(ComputeError) in
          try product.withUnsafeMutableBufferPointer { (p) throws(ComputeError) in
            try Linalg.gemm(d, rows: rows, columns: columns, h, rows: columns, columns: columns, into: p)
          }
        }
      }
    } catch { throw .compute(error) }
    var total = 0.0
    for index in 0..<values.count { total += values[index] * product[index] }
    return total
  }
}
