/// A singular value decomposition `A = U diag(S) Vᵀ`.
public struct SingularValueDecomposition<Scalar: LinalgScalar>: Sendable, Equatable {
  /// Left singular vectors as columns: `m` × `k` (thin) or `m` × `m` (full).
  public var u: Matrix<Scalar>
  /// The `k = min(m, n)` singular values in descending order.
  public var singularValues: [Scalar]
  /// Right singular vectors as rows: `k` × `n` (thin) or `n` × `n` (full).
  public var vt: Matrix<Scalar>
}

// Our row-major m × n buffer is, to LAPACK, the column-major n × m matrix Aᵀ. Decomposing that,
// Aᵀ = U' S V'ᵀ gives A = V' S U'ᵀ, so our U is V' and our Vᵀ is U'ᵀ. LAPACK writes V'ᵀ and U'
// column-major, and their buffers read row-major are exactly V' and U'ᵀ: the results need no
// transposes, and the input needs none either.

extension Matrix {
  /// The singular value decomposition, through `?gesdd` (divide and conquer).
  ///
  /// - Parameter full: `false` for the thin decomposition (`U` is `m` × `k`, `Vᵀ` is `k` × `n`),
  ///   `true` for square `U` and `Vᵀ`.
  /// - Throws: `ComputeError.lapack` when the algorithm does not converge.
  public func svd(full: Bool = false) throws(ComputeError) -> SingularValueDecomposition<Scalar> {
    let (m, n) = (rows, columns)
    let k = min(m, n)
    let uColumns = full ? m : k
    let vtRows = full ? n : k
    if k == 0 {
      // Nothing to decompose; the full factors still have to be orthogonal.
      return SingularValueDecomposition(
        u: full ? .identity(m) : Matrix(rows: m, columns: 0), singularValues: [],
        vt: full ? .identity(n) : Matrix(rows: 0, columns: n))
    }
    var u = Matrix(rows: m, columns: uColumns)
    var vt = Matrix(rows: vtRows, columns: n)
    let singularValues = try runGesdd(
      jobz: full ? "A" : "S", lapackU: &vt.storage, lapackVT: &u.storage, ldu: n,
      ldvt: uColumns)
    return SingularValueDecomposition(u: u, singularValues: singularValues, vt: vt)
  }

  /// The singular values in descending order, through `?gesdd` without vectors.
  public func singularValues() throws(ComputeError) -> [Scalar] {
    if isEmpty { return [] }
    var none: [Scalar] = [0]
    var alsoNone: [Scalar] = [0]
    return try runGesdd(jobz: "N", lapackU: &none, lapackVT: &alsoNone, ldu: 1, ldvt: 1)
  }

  /// Calls `?gesdd` on the column-major `columns` × `rows` reading of a copy of `self`.
  private func runGesdd(
    jobz: String, lapackU: inout [Scalar], lapackVT: inout [Scalar], ldu: Int, ldvt: Int
  ) throws(ComputeError) -> [Scalar] {
    let operation = "svd"
    var a = storage
    var m = try blasInt(columns, operation)
    var n = try blasInt(rows, operation)
    var lda = m
    var lduValue = try blasInt(ldu, operation)
    var ldvtValue = try blasInt(ldvt, operation)
    var s = [Scalar](repeating: 0, count: min(rows, columns))
    var iwork = [Int32](repeating: 0, count: 8 * s.count)
    var info: Int32 = 0
    var lwork: Int32 = -1
    // The first pass asks for the workspace size (lwork = -1), which comes back in work[0].
    var work: [Scalar] = [0]
    for pass in 0..<2 {
      if pass == 1 {
        lwork = try workspaceLength(work[0], operation)
        work = [Scalar](repeating: 0, count: Int(lwork))
      }
      a.withUnsafeMutableBufferPointer { aBuffer in
        s.withUnsafeMutableBufferPointer { sBuffer in
          lapackU.withUnsafeMutableBufferPointer { uBuffer in
            lapackVT.withUnsafeMutableBufferPointer { vtBuffer in
              iwork.withUnsafeMutableBufferPointer { iworkBuffer in
                work.withUnsafeMutableBufferPointer { workBuffer in
                  Scalar._gesdd(
                    jobz: jobz, m: &m, n: &n, a: aBuffer.baseAddress, lda: &lda,
                    s: sBuffer.baseAddress, u: uBuffer.baseAddress, ldu: &lduValue,
                    vt: vtBuffer.baseAddress, ldvt: &ldvtValue,
                    work: workBuffer.baseAddress, lwork: &lwork,
                    iwork: iworkBuffer.baseAddress, info: &info)
                }
              }
            }
          }
        }
      }
      try checkLapack(info, "gesdd", Scalar.self)
    }
    return s
  }
}
