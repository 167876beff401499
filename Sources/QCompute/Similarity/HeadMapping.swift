/// Attention-head allocation for one mapped layer pair (LoRASuite §4): the cosine similarity of
/// every old head's QK and VO products with every new head's, then a Hungarian assignment.
///
/// Weights are in PyTorch layout (out × in): `q` is (heads·headDim) × hidden, `k` and `v` are
/// (kvHeads·headDim) × hidden, `o` is hidden × (heads·headDim). Head `h` owns rows
/// `h·headDim ..< (h+1)·headDim` of `q` and columns of `o`; with grouped-query attention, query head
/// `h` uses key/value head `h / (heads / kvHeads)`, which is `repeat_kv` (repeat-interleave) without
/// the copies. The descriptors (row layout, new hidden × new hidden) are
///
///     old: QK_a = W_xᵀ Q_aᵀ K_a W_x,  VO_a = W_xᵀ V_aᵀ O_aᵀ W_x;   new: QK_b = Q_bᵀ K_b,  VO_b = V_bᵀ O_bᵀ
///
/// and the similarity is the cosine between `concat(vec QK, vec VO)`. No hidden × hidden matrix is
/// formed: `⟨QK_a, QK_b⟩ = Σ (Q_a W_x Q_bᵀ) ⊙ (K_a W_x K_bᵀ)`, and VO likewise with `O_aᵀ` for `K_a`.
/// When the old model has more heads than the new one, the surplus old heads stay unassigned
/// (the paper pads to square; the authors' code refuses).
public enum HeadMapping {
  /// Maps the old layer's heads onto the new layer's.
  /// - Parameters:
  ///   - heads: query-head counts of the old and new layer.
  ///   - kvHeads: key/value-head counts (equal to `heads` without GQA).
  ///   - transfer: old hidden × new hidden (LoRASuite's `W_x`); nil means the identity and needs
  ///     equal hidden sizes.
  /// - Throws: `ComputeError.shapeMismatch` when a shape does not fit the head counts.
  public static func map<Scalar: LinalgScalar>(
    oldQ: Matrix<Scalar>, oldK: Matrix<Scalar>, oldV: Matrix<Scalar>, oldO: Matrix<Scalar>,
    newQ: Matrix<Scalar>, newK: Matrix<Scalar>, newV: Matrix<Scalar>, newO: Matrix<Scalar>,
    heads: (old: Int, new: Int), kvHeads: (old: Int, new: Int), transfer: Matrix<Scalar>? = nil
  ) throws(ComputeError) -> HeadMappingResult {
    let old = try AttentionShape(
      q: oldQ, k: oldK, v: oldV, o: oldO, heads: heads.old, kvHeads: kvHeads.old, side: "old")
    let new = try AttentionShape(
      q: newQ, k: newK, v: newV, o: newO, heads: heads.new, kvHeads: kvHeads.new, side: "new")
    let operation = "HeadMapping.map"
    let transferD: Matrix<Double>
    if let transfer {
      guard transfer.rows == old.hidden, transfer.columns == new.hidden else {
        throw .shapeMismatch(
          operation: operation,
          detail:
            "transfer is \(transfer.rows) x \(transfer.columns), hidden sizes are \(old.hidden) and \(new.hidden)"
        )
      }
      transferD = transfer.converted()
    } else {
      guard old.hidden == new.hidden else {
        throw .shapeMismatch(
          operation: operation,
          detail: "hidden sizes \(old.hidden) and \(new.hidden) differ; pass a transfer matrix")
      }
      transferD = .identity(old.hidden)
    }

    // Old weights moved into the new hidden basis: X W_x for X in q, k, v and oᵀ.
    let oldQx = try Matrix.matmul(oldQ.converted(), transferD)
    let oldKx = try Matrix.matmul(oldK.converted(), transferD)
    let oldVx = try Matrix.matmul(oldV.converted(), transferD)
    let oldOx = try Matrix.matmul(oldO.converted(), transferD, transposeA: true)
    let newQd: Matrix<Double> = newQ.converted()
    let newKd: Matrix<Double> = newK.converted()
    let newVd: Matrix<Double> = newV.converted()
    let newOtd: Matrix<Double> = newO.converted().transposed()

    // Cross blocks (old rows × new rows) and self blocks for the norms.
    let crossQ = try Matrix.matmul(oldQx, newQd, transposeB: true)
    let crossK = try Matrix.matmul(oldKx, newKd, transposeB: true)
    let crossV = try Matrix.matmul(oldVx, newVd, transposeB: true)
    let crossO = try Matrix.matmul(oldOx, newOtd, transposeB: true)
    let oldNorms = selfInner(
      q: try oldQx.rowGram(), k: try oldKx.rowGram(), v: try oldVx.rowGram(),
      o: try oldOx.rowGram(), shape: old)
    let newNorms = selfInner(
      q: try newQd.rowGram(), k: try newKd.rowGram(), v: try newVd.rowGram(),
      o: try newOtd.rowGram(), shape: new)

    var similarity = Matrix<Double>(rows: old.heads, columns: new.heads)
    for a in 0..<old.heads {
      for b in 0..<new.heads {
        let (ka, kb) = (old.kvHead(of: a), new.kvHead(of: b))
        let qk = blockInner(
          crossQ, rowBlock: a, crossK, rowBlock: ka, rowSize: old.headDim,
          columnBlock: b, columnBlock: kb, columnSize: new.headDim)
        let vo = blockInner(
          crossV, rowBlock: ka, crossO, rowBlock: a, rowSize: old.headDim,
          columnBlock: kb, columnBlock: b, columnSize: new.headDim)
        let denominator = (oldNorms[a] * newNorms[b]).squareRoot()
        similarity[a, b] = denominator > 0 ? (qk + vo) / denominator : 0
      }
    }
    let oldToNew = Hungarian.maximize(similarity)
    var newToOld = [Int?](repeating: nil, count: new.heads)
    for (a, b) in oldToNew.enumerated() {
      if let b { newToOld[b] = a }
    }
    return HeadMappingResult(
      similarity: similarity, oldToNew: oldToNew, newToOld: newToOld,
      totalSimilarity: Hungarian.total(similarity, assignment: oldToNew))
  }

  /// `‖QK_h‖² + ‖VO_h‖²` for every head from the four row Gram matrices.
  private static func selfInner(
    q: Matrix<Double>, k: Matrix<Double>, v: Matrix<Double>, o: Matrix<Double>,
    shape: AttentionShape
  ) -> [Double] {
    (0..<shape.heads).map { h in
      let kv = shape.kvHead(of: h)
      let d = shape.headDim
      return blockInner(q, rowBlock: h, k, rowBlock: kv, rowSize: d, columnBlock: h, columnBlock: kv, columnSize: d)
        + blockInner(v, rowBlock: kv, o, rowBlock: h, rowSize: d, columnBlock: kv, columnBlock: h, columnSize: d)
    }
  }

  /// `Σ A[block] ⊙ B[block]` over one `rowSize` × `columnSize` block of each matrix.
  private static func blockInner(
    _ a: Matrix<Double>, rowBlock aRow: Int, _ b: Matrix<Double>, rowBlock bRow: Int,
    rowSize: Int, columnBlock aColumn: Int, columnBlock bColumn: Int, columnSize: Int
  ) -> Double {
    a.withUnsafeBufferPointer { a0 in
      b.withUnsafeBufferPointer { b0 in
        var sum: Double = 0
        for r in 0..<rowSize {
          let aBase = (aRow * rowSize + r) * a.columns + aColumn * columnSize
          let bBase = (bRow * rowSize + r) * b.columns + bColumn * columnSize
          for c in 0..<columnSize { sum += a0[aBase &+ c] * b0[bBase &+ c] }
        }
        return sum
      }
    }
  }
}

/// The head similarities and the assignment chosen from them.
public struct HeadMappingResult: Sendable, Equatable {
  /// Cosine similarity, old heads × new heads.
  public var similarity: Matrix<Double>
  /// For each old head, its new head (nil for surplus old heads).
  public var oldToNew: [Int?]
  /// For each new head, its old head (nil for new heads with no match, whose update stays zero).
  public var newToOld: [Int?]
  /// The summed similarity of the assigned pairs.
  public var totalSimilarity: Double
}

/// Head counts and sizes checked against one side's q, k, v, o shapes.
private struct AttentionShape {
  let heads: Int
  let kvHeads: Int
  let headDim: Int
  let hidden: Int

  init<Scalar: LinalgScalar>(
    q: Matrix<Scalar>, k: Matrix<Scalar>, v: Matrix<Scalar>, o: Matrix<Scalar>, heads: Int,
    kvHeads: Int, side: String
  ) throws(ComputeError) {
    let operation = "HeadMapping.map"
    guard heads > 0, kvHeads > 0, heads % kvHeads == 0 else {
      throw .shapeMismatch(
        operation: operation,
        detail: "\(side) layer has \(heads) heads and \(kvHeads) key/value heads")
    }
    guard q.rows % heads == 0, q.rows > 0 else {
      throw .shapeMismatch(
        operation: operation, detail: "\(side) q has \(q.rows) rows for \(heads) heads")
    }
    let headDim = q.rows / heads
    let hidden = q.columns
    let kvRows = kvHeads * headDim
    guard k.rows == kvRows, v.rows == kvRows, k.columns == hidden, v.columns == hidden,
      o.rows == hidden, o.columns == q.rows
    else {
      throw .shapeMismatch(
        operation: operation,
        detail:
          "\(side) q \(q.rows) x \(q.columns), k \(k.rows) x \(k.columns), v \(v.rows) x \(v.columns), o \(o.rows) x \(o.columns) do not fit \(heads) heads, \(kvHeads) key/value heads of size \(headDim)"
      )
    }
    self.heads = heads
    self.kvHeads = kvHeads
    self.headDim = headDim
    self.hidden = hidden
  }

  /// The key/value head that query head `h` reads, as `repeat_kv` lays them out.
  func kvHead(of h: Int) -> Int { h / (heads / kvHeads) }
}
