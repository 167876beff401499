/// The LoRASuite transforms (arXiv 2505.13515 §3, Alg. 2) that move one module's LoRA update from
/// an old base model onto a new one, in PyTorch layout (weights out × in, `ΔW = B A`).
///
/// `transfer` is the hidden-state transfer `W_x` (old hidden × new hidden): new hidden rows are
/// approximated by old ones as `h_n ≈ h_o W_x`. Every transform returns factors whose product is
/// the moved update, rank at most the old rank, ready for `LoRAFactors.refactored(rank:)`.
///
/// Two head maps are offered. The paper's `T_ab = W_o^(a) W_x W_n^(b)ᵀ` is not identity-preserving
/// (with old == new it gives `W Wᵀ`, not `I`); `normalized` replaces the old head's factor by its
/// pseudo-inverse, the least-squares map that reproduces an adapter exactly when old and new are
/// the same model.
public enum LoRATransfer {
  /// Relative singular-value cut-off of every pseudo-inverse and least-squares solve.
  public static let relativeTolerance = 1e-10

  /// The minimum-norm least-squares `X` of `a X ≈ b`, that is `pinv(a) b`.
  static func pinvTimes(_ a: Matrix<Double>, _ b: Matrix<Double>) throws(ComputeError) -> Matrix<Double> {
    try Matrix.leastSquares(a, b, rcond: relativeTolerance).solution
  }

  /// Moves a q, k or v update, whose heads are row blocks of `headDim` rows.
  ///
  /// - Parameters:
  ///   - newToOld: for every new query head, its old query head (nil: no match, update zero).
  ///   - queriesPerBlock: query heads sharing one row block (1 for q; heads / kvHeads for k and v
  ///     under grouped-query attention). The old side is repeated as `repeat_kv` does; on a GQA new
  ///     side the blocks of the query heads sharing a key/value head are averaged, as the
  ///     authors' code does (its `n_rep` bug, the old head count used for the new side, is not
  ///     copied).
  public static func rowBlocks(
    _ old: LoRAFactors, oldWeight: Matrix<Double>, newWeight: Matrix<Double>,
    headDim: (old: Int, new: Int), queriesPerBlock: (old: Int, new: Int), newToOld: [Int?],
    transfer: Matrix<Double>, normalized: Bool
  ) throws(ComputeError) -> LoRAFactors {
    let operation = "LoRATransfer.rowBlocks"
    guard oldWeight.rows % headDim.old == 0, newWeight.rows % headDim.new == 0,
      old.b.rows == oldWeight.rows, oldWeight.columns == transfer.rows,
      newWeight.columns == transfer.columns,
      newToOld.count == (newWeight.rows / headDim.new) * queriesPerBlock.new
    else {
      throw .shapeMismatch(
        operation: operation,
        detail:
          "old \(oldWeight.rows) x \(oldWeight.columns), new \(newWeight.rows) x \(newWeight.columns), B \(old.b.rows) x \(old.b.columns), transfer \(transfer.rows) x \(transfer.columns), \(newToOld.count) new heads"
      )
    }
    let rank = old.rank
    let newBlocks = newWeight.rows / headDim.new
    let oldBlocks = oldWeight.rows / headDim.old
    // Old head a's block, moved into the new basis: W_o^(a) W_x (paper) or the transpose of
    // pinv(W_o^(a)), so that T_abᵀ = W_n^(b) W_xᵀ [W_o^(a)ᵀ | pinv(W_o^(a))] = W_n^(b) (·)ᵀ.
    var oldFactor: [Int: Matrix<Double>] = [:]
    func factor(_ block: Int) throws(ComputeError) -> Matrix<Double> {
      if let cached = oldFactor[block] { return cached }
      let w = oldWeight.rowSlice(block * headDim.old..<(block + 1) * headDim.old)
      // d_ho × d_n: (W_x^T X)^T where X is W_o^(a)ᵀ or pinv(W_o^(a)) (d_o × d_ho).
      let x = normalized ? try pinvTimes(w, .identity(headDim.old)) : w.transposed()
      let moved = try Matrix.matmul(x, transfer, transposeA: true)
      oldFactor[block] = moved
      return moved
    }
    var b = Matrix<Double>(rows: newWeight.rows, columns: rank)
    for block in 0..<newBlocks {
      let wNew = newWeight.rowSlice(block * headDim.new..<(block + 1) * headDim.new)
      var sum = Matrix<Double>(rows: headDim.new, columns: rank)
      for replica in 0..<queriesPerBlock.new {
        guard let oldHead = newToOld[block * queriesPerBlock.new + replica] else { continue }
        let oldBlock = oldHead / queriesPerBlock.old
        guard oldBlock < oldBlocks else {
          throw .shapeMismatch(operation: operation, detail: "old head \(oldHead) out of range")
        }
        // T_abᵀ = W_n^(b) · (moved old factor)ᵀ, d_hn × d_ho.
        let t = try Matrix.matmul(wNew, try factor(oldBlock), transposeB: true)
        let oldB = old.b.rowSlice(oldBlock * headDim.old..<(oldBlock + 1) * headDim.old)
        try sum.addProduct(t, oldB)
      }
      let scale = 1 / Double(queriesPerBlock.new)
      for i in 0..<headDim.new {
        for k in 0..<rank { b[block * headDim.new + i, k] = sum[i, k] * scale }
      }
    }
    return try LoRAFactors(a: try Matrix.matmul(old.a, transfer), b: b)
  }

  /// Moves an o_proj update, whose heads are column blocks:
  /// `ΔW_n[:, b] = W_xᵀ ΔW_o[:, a] T_ab` with `T_ab = W_o[:, a]ᵀ W_x W_n[:, b]` (paper) or
  /// `pinv(W_o[:, a]) W_x W_n[:, b]` (normalized).
  public static func columnBlocks(
    _ old: LoRAFactors, oldWeight: Matrix<Double>, newWeight: Matrix<Double>,
    headDim: (old: Int, new: Int), newToOld: [Int?], transfer: Matrix<Double>, normalized: Bool
  ) throws(ComputeError) -> LoRAFactors {
    let operation = "LoRATransfer.columnBlocks"
    guard oldWeight.columns % headDim.old == 0, newWeight.columns % headDim.new == 0,
      old.a.columns == oldWeight.columns, oldWeight.rows == transfer.rows,
      newWeight.rows == transfer.columns, newToOld.count == newWeight.columns / headDim.new
    else {
      throw .shapeMismatch(
        operation: operation,
        detail:
          "old \(oldWeight.rows) x \(oldWeight.columns), new \(newWeight.rows) x \(newWeight.columns), A \(old.a.rows) x \(old.a.columns), transfer \(transfer.rows) x \(transfer.columns), \(newToOld.count) new heads"
      )
    }
    let rank = old.rank
    let oldT = oldWeight.transposed()
    let newT = newWeight.transposed()
    var a = Matrix<Double>(rows: rank, columns: newWeight.columns)
    for (newHead, oldHead) in newToOld.enumerated() {
      guard let oldHead else { continue }
      guard oldHead < oldWeight.columns / headDim.old else {
        throw .shapeMismatch(operation: operation, detail: "old head \(oldHead) out of range")
      }
      let oldRange = oldHead * headDim.old..<(oldHead + 1) * headDim.old
      let newRange = newHead * headDim.new..<(newHead + 1) * headDim.new
      // W_x W_n[:, b], d_o × d_hn.
      let movedNew = try Matrix.matmul(transfer, newT.rowSlice(newRange), transposeB: true)
      let wOld = oldT.rowSlice(oldRange).transposed()  // W_o[:, a], d_o × d_ho
      let t =
        normalized
        ? try pinvTimes(wOld, movedNew) : try Matrix.matmul(wOld, movedNew, transposeA: true)
      let oldA = old.a.transposed().rowSlice(oldRange)  // A_o[:, a]ᵀ, d_ho × r
      let block = try Matrix.matmul(oldA, t, transposeA: true)  // r × d_hn
      for k in 0..<rank {
        for j in 0..<headDim.new { a[k, newRange.lowerBound + j] = block[k, j] }
      }
    }
    return try LoRAFactors(a: a, b: try Matrix.matmul(transfer, old.b, transposeA: true))
  }

  /// up_proj or gate_proj as the authors' code does up_proj (gate_proj is an extension):
  /// `B_n = W_n pinv(W_x) pinv(W_o) B_o`, `A_n = A_o W_x`.
  public static func expanding(
    _ old: LoRAFactors, oldWeight: Matrix<Double>, newWeight: Matrix<Double>,
    transfer: Matrix<Double>
  ) throws(ComputeError) -> LoRAFactors {
    let inOld = try pinvTimes(oldWeight, old.b)
    let inNew = try pinvTimes(transfer, inOld)
    return try LoRAFactors(
      a: try Matrix.matmul(old.a, transfer), b: try Matrix.matmul(newWeight, inNew))
  }

  /// down_proj as the authors' code does it: `B_n = pinv(W_x) B_o`,
  /// `A_n = A_o pinv(W_o) W_x W_n`.
  public static func contracting(
    _ old: LoRAFactors, oldWeight: Matrix<Double>, newWeight: Matrix<Double>,
    transfer: Matrix<Double>
  ) throws(ComputeError) -> LoRAFactors {
    // (A_o pinv(W_o))ᵀ = pinv(W_oᵀ) A_oᵀ, d_o × r.
    let pulled = try pinvTimes(oldWeight.transposed(), old.a.transposed())
    let moved = try Matrix.matmul(pulled, transfer, transposeA: true)  // r × d_n
    return try LoRAFactors(
      a: try Matrix.matmul(moved, newWeight), b: try pinvTimes(transfer, old.b))
  }

  /// Matrices with equal row counts side by side.
  public static func hstack(_ parts: [Matrix<Double>]) throws(ComputeError) -> Matrix<Double> {
    let rows = parts.first?.rows ?? 0
    if let odd = parts.first(where: { $0.rows != rows }) {
      throw .shapeMismatch(operation: "hstack", detail: "\(rows) and \(odd.rows) rows")
    }
    let columns = parts.reduce(0) { $0 + $1.columns }
    var result = Matrix<Double>(rows: rows, columns: columns)
    var offset = 0
    for part in parts {
      for i in 0..<rows {
        for j in 0..<part.columns { result[i, offset + j] = part[i, j] }
      }
      offset += part.columns
    }
    return result
  }
}
