extension LoRATransfer {
  /// Which side of an MLP update the neuron map acts on.
  public enum MLPDirection: Sendable {
    /// up_proj or gate_proj: neurons are the rows, `B_n = M B_o`, `A_n = A_o W_x`.
    case expanding
    /// down_proj: neurons are the columns, `A_n = A_o Mᵀ`, `B_n = W_xᵀ B_o`.
    case contracting
  }

  /// Moves one layer's MLP updates with the normalized neuron map `M = X_n pinv(X_o W_x)` (new
  /// intermediate × old intermediate), where a layer's neurons are the rows of
  /// `X = [W_up | W_gate | W_downᵀ]`: the least-squares `M` with `M X_o W_x ≈ X_n`, exact when
  /// old == new and the intermediate size is at most three times the hidden size.
  ///
  /// `M` is never formed: every update needs it only on its r columns (`M B_o`, `M A_oᵀ`), so all
  /// of them are stacked and solved at once with one factorisation per layer.
  ///
  /// - Parameters:
  ///   - old: `[W_up, W_gate, W_downᵀ]` of the old layer, each intermediate × old hidden.
  ///   - new: the same of the new layer, each intermediate × new hidden.
  ///   - transfer: `W_x`, or nil for the identity (equal hidden spaces), which saves three
  ///     intermediate × hidden × hidden products per layer.
  public static func normalizedMLP(
    _ updates: [(factors: LoRAFactors, direction: MLPDirection)], old: [Matrix<Double>],
    new: [Matrix<Double>], transfer: Matrix<Double>?
  ) throws(ComputeError) -> [LoRAFactors] {
    var movedOld: [Matrix<Double>] = []
    for x in old { movedOld.append(try transfer.map { t throws(ComputeError) in try Matrix.matmul(x, t) } ?? x) }
    let xo = try hstack(movedOld)
    let xn = try hstack(new)
    var columns: [Matrix<Double>] = []
    for update in updates {
      columns.append(update.direction == .expanding ? update.factors.b : update.factors.a.transposed())
    }
    let mapped = try Matrix.matmul(xn, try pinvTimesWide(xo, try hstack(columns)))
    var result: [LoRAFactors] = []
    var offset = 0
    for (update, part) in zip(updates, columns) {
      var block = Matrix<Double>(rows: mapped.rows, columns: part.columns)
      for i in 0..<mapped.rows {
        for k in 0..<part.columns { block[i, k] = mapped[i, offset + k] }
      }
      offset += part.columns
      switch update.direction {
      case .expanding:
        let a = try transfer.map { t throws(ComputeError) in try Matrix.matmul(update.factors.a, t) }
        result.append(try LoRAFactors(a: a ?? update.factors.a, b: block))
      case .contracting:
        let b = try transfer.map { t throws(ComputeError) in
          try Matrix.matmul(t, update.factors.b, transposeA: true)
        }
        result.append(try LoRAFactors(a: block.transposed(), b: b ?? update.factors.b))
      }
    }
    return result
  }

  /// `pinv(a) y` for a wide `a` (rows ≤ columns). With full row rank this is `aᵀ (a aᵀ)⁻¹ y`:
  /// one SYRK and one Cholesky (BLAS-3, far cheaper than the bidiagonalisation of `gelsd`).
  /// The result lies in the row space of `a`, so when it also solves `a x = y` it is the
  /// minimum-norm solution; otherwise (rank-deficient `a`, or too ill-conditioned a Gram) the
  /// SVD-based least squares is used.
  static func pinvTimesWide(_ a: Matrix<Double>, _ y: Matrix<Double>) throws(ComputeError) -> Matrix<Double> {
    if a.rows <= a.columns, a.rows > 0, let z = try? a.rowGram().solveSPD(y) {
      let x = try Matrix.matmul(a, z, transposeA: true)
      var residual = try Matrix.matmul(a, x)
      for i in 0..<residual.rows {
        for j in 0..<residual.columns { residual[i, j] -= y[i, j] }
      }
      if residual.frobeniusNorm <= wideResidualTolerance * y.frobeniusNorm { return x }
    }
    return try pinvTimes(a, y)
  }

  /// Relative residual `‖a x − y‖ / ‖y‖` the Cholesky path of `pinvTimesWide` must reach; with
  /// old == new it is exactly the error of the moved update.
  static let wideResidualTolerance = 1e-9
}
