// The row-major buffer of a symmetric matrix read column-major is the same matrix, and LAPACK's
// column-major upper triangle is our row-major lower triangle. So `potrf` with `uplo = "U"` on our
// buffer computes `A = Uᵀ U` in LAPACK's view, which leaves `L = Uᵀ` in our lower triangle: no copy
// or transpose is needed. Only the lower triangle of the input is read.

extension Matrix {
  /// The lower-triangular Cholesky factor `L` with `self = L Lᵀ`, through `?potrf`.
  ///
  /// Only the lower triangle of `self` is read; the strict upper triangle of the result is zero.
  /// - Throws: `ComputeError.notPositiveDefinite` with the order of the failing leading minor,
  ///   `ComputeError.shapeMismatch` for a matrix that is not square.
  public func cholesky() throws(ComputeError) -> Matrix {
    var factor = self
    try factor.factorCholeskyInPlace("cholesky")
    let n = rows
    factor.storage.withUnsafeMutableBufferPointer { buffer in
      for i in 0..<n {
        for j in (i &+ 1)..<max(i &+ 1, n) { buffer[i &* n &+ j] = 0 }
      }
    }
    return factor
  }

  /// The inverse of a symmetric positive-definite matrix, through `?potrf` and `?potri`.
  ///
  /// Only the lower triangle of `self` is read; the result is symmetric with both triangles filled.
  /// - Throws: `ComputeError.notPositiveDefinite`, `ComputeError.shapeMismatch` for a matrix that
  ///   is not square.
  public func inverseSPD() throws(ComputeError) -> Matrix {
    let operation = "inverseSPD"
    var inverse = self
    try inverse.factorCholeskyInPlace(operation)
    if inverse.isEmpty { return inverse }
    var n = try blasInt(rows, operation)
    var lda = n
    var info: Int32 = 0
    inverse.storage.withUnsafeMutableBufferPointer { a in
      Scalar._potri(uplo: "U", n: &n, a: a.baseAddress, lda: &lda, info: &info)
    }
    if info > 0 {
      // A zero on the diagonal of the factor: the matrix is singular.
      throw .notPositiveDefinite(operation: operation, order: Int(info))
    }
    try checkLapack(info, "potri", Scalar.self)
    inverse.mirrorLowerToUpper()
    return inverse
  }

  /// The solution `X` of `self * X = b` for a symmetric positive-definite `self`.
  ///
  /// Factors with `?potrf`, then runs two triangular solves (`cblas_?trsm`) on a row-major copy
  /// of `b`, which saves transposing `b` into LAPACK's layout for `?potrs`.
  /// - Throws: `ComputeError.notPositiveDefinite`, `ComputeError.shapeMismatch` when `self` is not
  ///   square or `b` has a different number of rows.
  public func solveSPD(_ b: Matrix) throws(ComputeError) -> Matrix {
    let operation = "solveSPD"
    try requireSquare(operation)
    guard b.rows == rows else {
      throw .shapeMismatch(
        operation: operation, detail: "A is \(rows) x \(columns), B is \(b.rows) x \(b.columns)")
    }
    var factor = self
    try factor.factorCholeskyInPlace(operation)
    var solution = b
    if solution.isEmpty { return solution }
    let n = try blasInt(rows, operation)
    let nrhs = try blasInt(b.columns, operation)
    factor.storage.withUnsafeBufferPointer { l in
      solution.storage.withUnsafeMutableBufferPointer { x in
        // L Y = B, then Lᵀ X = Y. The strict upper triangle of `factor` still holds input values,
        // which trsm ignores because it is told the matrix is lower triangular.
        Scalar._trsmLeftLower(
          transpose: false, m: n, n: nrhs, a: l.baseAddress, lda: n, b: x.baseAddress, ldb: nrhs)
        Scalar._trsmLeftLower(
          transpose: true, m: n, n: nrhs, a: l.baseAddress, lda: n, b: x.baseAddress, ldb: nrhs)
      }
    }
    return solution
  }

  /// Runs `?potrf` in place, leaving `L` in the row-major lower triangle and the strict upper
  /// triangle untouched.
  mutating func factorCholeskyInPlace(_ operation: String) throws(ComputeError) {
    try requireSquare(operation)
    if isEmpty { return }
    var n = try blasInt(rows, operation)
    var lda = n
    var info: Int32 = 0
    storage.withUnsafeMutableBufferPointer { a in
      Scalar._potrf(uplo: "U", n: &n, a: a.baseAddress, lda: &lda, info: &info)
    }
    if info > 0 { throw .notPositiveDefinite(operation: operation, order: Int(info)) }
    try checkLapack(info, "potrf", Scalar.self)
  }
}
