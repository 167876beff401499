/// Eigenvalues and eigenvectors of a symmetric matrix.
public struct SymmetricEigen<Scalar: LinalgScalar>: Sendable, Equatable {
  /// The eigenvalues in ascending order.
  public var eigenvalues: [Scalar]
  /// Orthonormal eigenvectors as columns: column `i` belongs to `eigenvalues[i]`.
  public var eigenvectors: Matrix<Scalar>
}

extension Matrix {
  /// The eigendecomposition `self = V diag(w) Vᵀ` of a symmetric matrix, through `?syevd`.
  ///
  /// Only the lower triangle of `self` is read. Each eigenvector's sign is arbitrary.
  /// - Throws: `ComputeError.shapeMismatch` for a matrix that is not square,
  ///   `ComputeError.lapack` when the algorithm does not converge.
  public func symmetricEigen() throws(ComputeError) -> SymmetricEigen<Scalar> {
    let (eigenvalues, rowVectors) = try runSyevd(vectors: true)
    // LAPACK leaves the eigenvectors as columns of a column-major matrix, which our row-major
    // reading sees as rows; one transpose puts them into columns.
    return SymmetricEigen(eigenvalues: eigenvalues, eigenvectors: rowVectors.transposed())
  }

  /// The eigenvalues of a symmetric matrix in ascending order, through `?syevd` without vectors.
  public func symmetricEigenvalues() throws(ComputeError) -> [Scalar] {
    try runSyevd(vectors: false).0
  }

  private func runSyevd(vectors: Bool) throws(ComputeError) -> ([Scalar], Matrix) {
    let operation = "symmetricEigen"
    try requireSquare(operation)
    var a = self
    var w = [Scalar](repeating: 0, count: rows)
    if isEmpty { return (w, a) }
    var n = try blasInt(rows, operation)
    var lda = n
    var info: Int32 = 0
    // Column-major upper triangle = row-major lower triangle (the matrix is symmetric).
    let jobz = vectors ? "V" : "N"
    var workQuery: Scalar = 0
    var iworkQuery: Int32 = 0
    var query: Int32 = -1
    a.storage.withUnsafeMutableBufferPointer { aBuffer in
      w.withUnsafeMutableBufferPointer { wBuffer in
        Scalar._syevd(
          jobz: jobz, uplo: "U", n: &n, a: aBuffer.baseAddress, lda: &lda, w: wBuffer.baseAddress,
          work: &workQuery, lwork: &query, iwork: &iworkQuery, liwork: &query, info: &info)
      }
    }
    try checkLapack(info, "syevd", Scalar.self)
    var lwork = try workspaceLength(workQuery, operation)
    var liwork = max(1, iworkQuery)
    var work = [Scalar](repeating: 0, count: Int(lwork))
    var iwork = [Int32](repeating: 0, count: Int(liwork))
    a.storage.withUnsafeMutableBufferPointer { aBuffer in
      w.withUnsafeMutableBufferPointer { wBuffer in
        work.withUnsafeMutableBufferPointer { workBuffer in
          iwork.withUnsafeMutableBufferPointer { iworkBuffer in
            Scalar._syevd(
              jobz: jobz, uplo: "U", n: &n, a: aBuffer.baseAddress, lda: &lda,
              w: wBuffer.baseAddress, work: workBuffer.baseAddress, lwork: &lwork,
              iwork: iworkBuffer.baseAddress, liwork: &liwork, info: &info)
          }
        }
      }
    }
    try checkLapack(info, "syevd", Scalar.self)
    return (w, a)
  }
}
