/// Linear CKA between every layer of an old model and every layer of a new one, the similarity
/// matrix that `LayerMapping.orderPreserving` turns into a layer map.
public enum CKAMatrix {
  /// CKA from activations: `old[i]` and `new[j]` are `m` × features representations of the same
  /// `m` examples, split into consecutive minibatches of `batchSize` rows (the whole set when nil).
  ///
  /// A last minibatch of fewer than 4 rows is left out, since the estimator needs 4.
  /// - Returns: an `old.count` × `new.count` matrix.
  /// - Throws: `ComputeError.shapeMismatch` when the example counts differ or are below 4.
  public static func fromActivations<Scalar: LinalgScalar>(
    old: [Matrix<Scalar>], new: [Matrix<Scalar>], batchSize: Int? = nil
  ) throws(ComputeError) -> Matrix<Double> {
    let operation = "CKAMatrix.fromActivations"
    let examples = old.first?.rows ?? new.first?.rows ?? 0
    if let odd = (old + new).first(where: { $0.rows != examples }) {
      throw .shapeMismatch(
        operation: operation, detail: "layers have \(examples) and \(odd.rows) examples")
    }
    if examples == 0 {
      throw .shapeMismatch(
        operation: operation, detail: "0 examples; the unbiased HSIC estimator needs at least 4")
    }
    var accumulator = MinibatchCKAMatrix(oldLayers: old.count, newLayers: new.count)
    let size = max(batchSize ?? examples, 1)
    var start = 0
    while start < examples {
      let end = min(start + size, examples)
      if end - start >= 4 || start == 0 {
        try accumulator.add(
          old: old.map { $0.rowSlice(start..<end) }, new: new.map { $0.rowSlice(start..<end) })
      }
      start = end
    }
    return accumulator.value
  }

  /// CKA from weights alone, with the hidden-state coordinates as the examples.
  ///
  /// LoRASuite computes CKA on activations only. Without data, each layer is represented by a
  /// matrix whose rows are indexed by the hidden (residual-stream) coordinates, such as the
  /// layer's output projections `[o_proj | down_proj]` (hidden × (attention + intermediate)): the
  /// Gram matrix `W Wᵀ` then compares what the layers write into the residual stream. When hidden
  /// sizes differ, `transfer` (old hidden × new hidden, LoRASuite's `W_x`) first maps each old
  /// matrix into the new basis as `W_xᵀ W`. The estimator is the same unbiased HSIC₁ as for
  /// activations, over one batch of `hidden` examples.
  /// - Throws: `ComputeError.shapeMismatch` when the hidden sizes disagree with each other or
  ///   with `transfer`.
  public static func fromWeights<Scalar: LinalgScalar>(
    old: [Matrix<Scalar>], new: [Matrix<Scalar>], transfer: Matrix<Scalar>? = nil
  ) throws(ComputeError) -> Matrix<Double> {
    let operation = "CKAMatrix.fromWeights"
    var mappedOld = old
    if let transfer {
      if let odd = old.first(where: { $0.rows != transfer.rows }) {
        throw .shapeMismatch(
          operation: operation,
          detail: "old layer has \(odd.rows) rows, transfer is \(transfer.rows) x \(transfer.columns)"
        )
      }
      mappedOld = []
      for layer in old {
        mappedOld.append(try Matrix.matmul(transfer, layer, transposeA: true))
      }
    }
    let hidden = new.first?.rows ?? mappedOld.first?.rows ?? 0
    if let odd = (mappedOld + new).first(where: { $0.rows != hidden }) {
      throw .shapeMismatch(
        operation: operation,
        detail:
          "hidden sizes \(hidden) and \(odd.rows) differ\(transfer == nil ? "; pass a transfer matrix" : "")"
      )
    }
    var accumulator = MinibatchCKAMatrix(oldLayers: old.count, newLayers: new.count)
    try accumulator.add(old: mappedOld, new: new)
    return accumulator.value
  }
}

/// Accumulates the HSIC₁ sums for every old × new layer pair over minibatches.
///
/// Each minibatch keeps the new layers' hollow Gram matrices (`new` × n² doubles) and streams the
/// old layers past them, so one old layer's Gram matrix is alive at a time.
public struct MinibatchCKAMatrix: Sendable, Equatable {
  public let oldLayers: Int
  public let newLayers: Int
  /// Σ HSIC₁(K_i, L_j), row-major `oldLayers` × `newLayers`.
  public private(set) var crossHSIC: [Double]
  /// Σ HSIC₁(K_i, K_i).
  public private(set) var oldHSIC: [Double]
  /// Σ HSIC₁(L_j, L_j).
  public private(set) var newHSIC: [Double]
  public private(set) var batches = 0

  public init(oldLayers: Int, newLayers: Int) {
    self.oldLayers = oldLayers
    self.newLayers = newLayers
    crossHSIC = Array(repeating: 0, count: oldLayers * newLayers)
    oldHSIC = Array(repeating: 0, count: oldLayers)
    newHSIC = Array(repeating: 0, count: newLayers)
  }

  /// Adds one minibatch: every layer's representation of the same `n ≥ 4` examples.
  /// - Throws: `ComputeError.shapeMismatch` when the layer counts or example counts disagree.
  public mutating func add<Scalar: LinalgScalar>(old: [Matrix<Scalar>], new: [Matrix<Scalar>])
    throws(ComputeError)
  {
    let operation = "MinibatchCKAMatrix.add"
    guard old.count == oldLayers, new.count == newLayers else {
      throw .shapeMismatch(
        operation: operation,
        detail: "\(old.count) x \(new.count) layers for a \(oldLayers) x \(newLayers) matrix")
    }
    let n = old.first?.rows ?? new.first?.rows ?? 0
    if let odd = (old + new).first(where: { $0.rows != n }) {
      throw .shapeMismatch(
        operation: operation, detail: "layers have \(n) and \(odd.rows) examples")
    }
    if oldLayers == 0 && newLayers == 0 { return }

    var newGrams: [HollowGram] = []
    var stacked: [Double] = []
    var stackedRowSums: [Double] = []
    stacked.reserveCapacity(newLayers * n * n)
    for (j, layer) in new.enumerated() {
      let gram = try HollowGram(representation: layer, operation: operation)
      newHSIC[j] += gram.hsic(with: gram)
      stacked += gram.elements
      stackedRowSums += gram.rowSums
      newGrams.append(gram)
    }
    let gramStack = Matrix<Double>(rows: newLayers, columns: n * n, storage: stacked)
    let rowSumStack = Matrix<Double>(rows: newLayers, columns: n, storage: stackedRowSums)
    for (i, layer) in old.enumerated() {
      let gram = try HollowGram(representation: layer, operation: operation)
      oldHSIC[i] += gram.hsic(with: gram)
      guard newLayers > 0 else { continue }
      let traces = try gramStack.matvec(gram.elements)
      let rowSumDots = try rowSumStack.matvec(gram.rowSums)
      for j in 0..<newLayers {
        crossHSIC[i * newLayers + j] += HollowGram.hsic(
          order: n, trace: traces[j], totals: gram.total * newGrams[j].total,
          rowSumsDot: rowSumDots[j])
      }
    }
    batches += 1
  }

  /// The CKA matrix so far, `oldLayers` × `newLayers`; NaN where a layer has no variation.
  public var value: Matrix<Double> {
    var result = Matrix<Double>(rows: oldLayers, columns: newLayers)
    for i in 0..<oldLayers {
      for j in 0..<newLayers {
        let denominator = (oldHSIC[i] * newHSIC[j]).squareRoot()
        result[i, j] =
          batches > 0 && denominator > 0 ? crossHSIC[i * newLayers + j] / denominator : .nan
      }
    }
    return result
  }
}

extension Matrix {
  /// The rows in `range` as a new matrix.
  func rowSlice(_ range: Range<Int>) -> Matrix {
    if range == 0..<rows { return self }
    let start = range.lowerBound * columns
    let end = range.upperBound * columns
    return Matrix(rows: range.count, columns: columns, storage: Array(storage[start..<end]))
  }

  /// The same values widened or narrowed to another scalar type.
  func converted<Target: LinalgScalar>(to _: Target.Type = Target.self) -> Matrix<Target> {
    Matrix<Target>(rows: rows, columns: columns, storage: storage.map { Target($0) })
  }
}
