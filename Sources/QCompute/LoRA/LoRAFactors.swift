/// One LoRA update `ΔW = B A` in PyTorch layout: `a` is rank × in, `b` is out × rank.
///
/// The scale (`lora_alpha / r`, or `/ √r` with rsLoRA) is left out: every transform is linear,
/// and the rank and alpha of a moved adapter stay those of the original.
public struct LoRAFactors: Sendable, Equatable {
  public var a: Matrix<Double>
  public var b: Matrix<Double>

  public init(a: Matrix<Double>, b: Matrix<Double>) throws(ComputeError) {
    guard a.rows == b.columns else {
      throw .shapeMismatch(
        operation: "LoRAFactors", detail: "A is \(a.rows) x \(a.columns), B is \(b.rows) x \(b.columns)")
    }
    self.a = a
    self.b = b
  }

  public var rank: Int { a.rows }

  /// The full update `B A`, for tests and small modules only.
  public func product() throws(ComputeError) -> Matrix<Double> { try Matrix.matmul(b, a) }

  /// `‖B A‖_F` from the r × r Gram matrices, `tr((BᵀB)(A Aᵀ))`, without forming `B A`.
  public func productNorm() throws(ComputeError) -> Double {
    let bGram = try Matrix.matmul(b, b, transposeA: true)
    let aGram = try Matrix.matmul(a, a, transposeB: true)
    var trace = 0.0
    for i in 0..<bGram.rows {
      for j in 0..<bGram.columns { trace += bGram[i, j] * aGram[j, i] }
    }
    return max(trace, 0).squareRoot()
  }

  /// Refactors `B A` (rank ≤ `rank`) into `rank` balanced factors `U√S`, `√S Vᵀ`: the rank-`rank`
  /// truncation of the SVD of `B A`, computed from thin QRs of `B` and `Aᵀ` and the SVD of the
  /// small product `R_B R_Aᵀ`, so no out × in matrix is ever formed. Missing singular directions
  /// (when `B A` has lower rank or a side is narrower than `rank`) are zero rows and columns, so
  /// the shapes keep the adapter's rank.
  public func refactored(rank target: Int) throws(ComputeError) -> LoRAFactors {
    let qrB = try b.thinQR()
    let qrA = try a.transposed().thinQR()
    let core = try Matrix.matmul(qrB.r, qrA.r, transposeB: true)
    let svd = try core.svd()
    let kept = min(target, svd.singularValues.count)
    var newB = Matrix<Double>(rows: b.rows, columns: target)
    var newA = Matrix<Double>(rows: target, columns: a.columns)
    // U = Q_B U_core, Vᵀ = V_coreᵀ Q_Aᵀ.
    let u = try Matrix.matmul(qrB.q, svd.u)
    let vt = try Matrix.matmul(svd.vt, qrA.q, transposeB: true)
    for k in 0..<kept {
      let root = max(svd.singularValues[k], 0).squareRoot()
      for i in 0..<b.rows { newB[i, k] = u[i, k] * root }
      for j in 0..<a.columns { newA[k, j] = vt[k, j] * root }
    }
    return try LoRAFactors(a: newA, b: newB)
  }
}
