/// The result of a rank-revealing least-squares solve.
public struct LeastSquaresSolution<Scalar: LinalgScalar>: Sendable, Equatable {
  /// The minimum-norm `X` that minimises `‖A X − B‖` (`n` × `nrhs`).
  public var solution: Matrix<Scalar>
  /// The effective rank of `A`: singular values above `rcond * s_max` are counted.
  public var rank: Int
  /// The singular values of `A` in descending order.
  public var singularValues: [Scalar]
}

extension Matrix {
  /// The `X` that minimises `‖a X − b‖` for a full-rank `a`, through `?gels` (QR or LQ).
  ///
  /// For `m >= n` this is the least-squares solution, for `m < n` the minimum-norm solution.
  /// Our row-major `a` is LAPACK's column-major `aᵀ`, so `?gels` runs with `trans = "T"` on the
  /// buffer as it is; only `b` is copied into LAPACK's column-major layout.
  /// - Throws: `ComputeError.shapeMismatch` when `a` and `b` have different numbers of rows,
  ///   `ComputeError.rankDeficient` when `a` does not have full rank.
  public static func leastSquares(_ a: Matrix, _ b: Matrix) throws(ComputeError) -> Matrix {
    let operation = "leastSquares"
    try requireSameRows(a, b, operation)
    let (m, n, nrhs) = (a.rows, a.columns, b.columns)
    if m == 0 || n == 0 || nrhs == 0 { return Matrix(rows: n, columns: nrhs) }
    let ldb = max(m, n)
    var packedB = try packColumnMajor(b, leadingDimension: ldb, operation)
    var aCopy = a.storage
    var lapackM = try blasInt(n, operation)
    var lapackN = try blasInt(m, operation)
    var nrhsValue = try blasInt(nrhs, operation)
    var lda = lapackM
    var ldbValue = try blasInt(ldb, operation)
    var info: Int32 = 0
    var lwork: Int32 = -1
    var work: [Scalar] = [0]
    for pass in 0..<2 {
      if pass == 1 {
        lwork = try workspaceLength(work[0], operation)
        work = [Scalar](repeating: 0, count: Int(lwork))
      }
      aCopy.withUnsafeMutableBufferPointer { aBuffer in
        packedB.withUnsafeMutableBufferPointer { bBuffer in
          work.withUnsafeMutableBufferPointer { workBuffer in
            Scalar._gels(
              trans: "T", m: &lapackM, n: &lapackN, nrhs: &nrhsValue, a: aBuffer.baseAddress,
              lda: &lda, b: bBuffer.baseAddress, ldb: &ldbValue, work: workBuffer.baseAddress,
              lwork: &lwork, info: &info)
          }
        }
      }
      if info > 0 { throw .rankDeficient(operation: operation, column: Int(info)) }
      try checkLapack(info, "gels", Scalar.self)
    }
    return unpackColumnMajor(packedB, rows: n, columns: nrhs, leadingDimension: ldb)
  }

  /// The minimum-norm `X` that minimises `‖a X − b‖` for any `a`, through `?gelsd` (SVD).
  ///
  /// - Parameter rcond: singular values at or below `rcond * s_max` count as zero; a negative
  ///   value means machine precision.
  /// - Throws: `ComputeError.shapeMismatch` when `a` and `b` have different numbers of rows,
  ///   `ComputeError.lapack` when the SVD does not converge.
  public static func leastSquares(
    _ a: Matrix, _ b: Matrix, rcond: Scalar
  ) throws(ComputeError) -> LeastSquaresSolution<Scalar> {
    let operation = "leastSquares"
    try requireSameRows(a, b, operation)
    let (m, n, nrhs) = (a.rows, a.columns, b.columns)
    if m == 0 || n == 0 || nrhs == 0 {
      let singularValues = nrhs == 0 ? try a.singularValues() : []
      let threshold = (rcond < 0 ? Scalar.ulpOfOne : rcond) * (singularValues.first ?? 0)
      let rank = singularValues.filter { $0 > threshold }.count
      return LeastSquaresSolution(
        solution: Matrix(rows: n, columns: nrhs), rank: rank, singularValues: singularValues)
    }
    let ldb = max(m, n)
    var packedB = try packColumnMajor(b, leadingDimension: ldb, operation)
    // gelsd has no transpose option, so `a` goes over in column-major order.
    var aColumnMajor = a.transposed().storage
    var mValue = try blasInt(m, operation)
    var nValue = try blasInt(n, operation)
    var nrhsValue = try blasInt(nrhs, operation)
    var lda = mValue
    var ldbValue = try blasInt(ldb, operation)
    var rcondValue = rcond
    var rank: Int32 = 0
    var s = [Scalar](repeating: 0, count: min(m, n))
    var info: Int32 = 0
    var lwork: Int32 = -1
    var work: [Scalar] = [0]
    var iwork: [Int32] = [0]
    for pass in 0..<2 {
      if pass == 1 {
        lwork = try workspaceLength(work[0], operation)
        work = [Scalar](repeating: 0, count: Int(lwork))
        iwork = [Int32](repeating: 0, count: Int(max(1, iwork[0])))
      }
      aColumnMajor.withUnsafeMutableBufferPointer { aBuffer in
        packedB.withUnsafeMutableBufferPointer { bBuffer in
          s.withUnsafeMutableBufferPointer { sBuffer in
            work.withUnsafeMutableBufferPointer { workBuffer in
              iwork.withUnsafeMutableBufferPointer { iworkBuffer in
                Scalar._gelsd(
                  m: &mValue, n: &nValue, nrhs: &nrhsValue, a: aBuffer.baseAddress, lda: &lda,
                  b: bBuffer.baseAddress, ldb: &ldbValue, s: sBuffer.baseAddress,
                  rcond: &rcondValue, rank: &rank, work: workBuffer.baseAddress, lwork: &lwork,
                  iwork: iworkBuffer.baseAddress, info: &info)
              }
            }
          }
        }
      }
      try checkLapack(info, "gelsd", Scalar.self)
    }
    return LeastSquaresSolution(
      solution: unpackColumnMajor(packedB, rows: n, columns: nrhs, leadingDimension: ldb),
      rank: Int(rank), singularValues: s)
  }

  private static func requireSameRows(
    _ a: Matrix, _ b: Matrix, _ operation: String
  ) throws(ComputeError) {
    guard a.rows == b.rows else {
      throw .shapeMismatch(
        operation: operation, detail: "A is \(a.rows) x \(a.columns), B is \(b.rows) x \(b.columns)"
      )
    }
  }

  /// `b` in column-major order with `leadingDimension` rows per column (zero padded).
  private static func packColumnMajor(
    _ b: Matrix, leadingDimension: Int, _ operation: String
  ) throws(ComputeError) -> [Scalar] {
    let (count, overflow) = leadingDimension.multipliedReportingOverflow(by: b.columns)
    guard !overflow else { throw .dimensionTooLarge(operation: operation, value: Int.max) }
    var packed = [Scalar](repeating: 0, count: count)
    for i in 0..<b.rows {
      for j in 0..<b.columns {
        packed[j &* leadingDimension &+ i] = b.storage[i &* b.columns &+ j]
      }
    }
    return packed
  }

  /// The leading `rows` × `columns` block of a column-major buffer, as a row-major matrix.
  private static func unpackColumnMajor(
    _ packed: [Scalar], rows: Int, columns: Int, leadingDimension: Int
  ) -> Matrix {
    var result = Matrix(rows: rows, columns: columns)
    for i in 0..<rows {
      for j in 0..<columns {
        result.storage[i &* columns &+ j] = packed[j &* leadingDimension &+ i]
      }
    }
    return result
  }
}
