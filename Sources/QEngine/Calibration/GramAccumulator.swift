import QCompute

/// Sums Xᵀ X over batches of rows: each batch through SYRK in Float, the running sum in Double,
/// so a long calibration run does not lose the small contributions of late windows.
struct GramAccumulator {
  let width: Int
  var sum: [Double]
  var rows = 0

  init(width: Int) {
    self.width = width
    sum = [Double](repeating: 0, count: width * width)
  }

  /// Adds `batch`, `[count, width]` row-major.
  mutating func add(_ batch: UnsafeBufferPointer<Float>, count: Int) throws {
    guard count > 0, width > 0 else { return }
    let partial = try Matrix<Float>(rows: count, columns: width, elements: Array(batch)).gram()
    partial.withUnsafeBufferPointer { (p: UnsafeBufferPointer<Float>) in
      for index in 0..<sum.count { sum[index] += Double(p[index]) }
    }
    rows += count
  }

  func matrix() throws -> Matrix<Double> {
    try Matrix(rows: width, columns: width, elements: sum)
  }
}
