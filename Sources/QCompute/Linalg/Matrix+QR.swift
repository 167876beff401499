/// A thin QR decomposition `A = Q R`.
public struct QRDecomposition<Scalar: LinalgScalar>: Sendable, Equatable {
  /// `m` × `k` with orthonormal columns, `k = min(m, n)`.
  public var q: Matrix<Scalar>
  /// `k` × `n`, upper triangular (upper trapezoidal when `m < n`).
  public var r: Matrix<Scalar>
}

extension Matrix {
  /// The thin QR decomposition, through `?geqrf` and `?orgqr`.
  ///
  /// Our row-major buffer is LAPACK's `Aᵀ`, whose QR would give an LQ of `A`, so `A` is copied
  /// into column-major order once (O(mn), small next to the O(mn²) factorisation).
  /// - Throws: `ComputeError.lapack` when LAPACK reports an illegal argument.
  public func thinQR() throws(ComputeError) -> QRDecomposition<Scalar> {
    let operation = "thinQR"
    let (m, n) = (rows, columns)
    let k = min(m, n)
    if k == 0 {
      return QRDecomposition(q: Matrix(rows: m, columns: 0), r: Matrix(rows: 0, columns: n))
    }
    var a = transposed().storage
    var mValue = try blasInt(m, operation)
    var nValue = try blasInt(n, operation)
    var kValue = try blasInt(k, operation)
    var lda = mValue
    var tau = [Scalar](repeating: 0, count: k)
    var info: Int32 = 0
    var lwork: Int32 = -1
    var work: [Scalar] = [0]
    for pass in 0..<2 {
      if pass == 1 {
        lwork = try workspaceLength(work[0], operation)
        work = [Scalar](repeating: 0, count: Int(lwork))
      }
      a.withUnsafeMutableBufferPointer { aBuffer in
        tau.withUnsafeMutableBufferPointer { tauBuffer in
          work.withUnsafeMutableBufferPointer { workBuffer in
            Scalar._geqrf(
              m: &mValue, n: &nValue, a: aBuffer.baseAddress, lda: &lda, tau: tauBuffer.baseAddress,
              work: workBuffer.baseAddress, lwork: &lwork, info: &info)
          }
        }
      }
      try checkLapack(info, "geqrf", Scalar.self)
    }

    var r = Matrix(rows: k, columns: n)
    for i in 0..<k {
      for j in i..<n { r.storage[i &* n &+ j] = a[j &* m &+ i] }
    }

    lwork = -1
    work = [0]
    for pass in 0..<2 {
      if pass == 1 {
        lwork = try workspaceLength(work[0], operation)
        work = [Scalar](repeating: 0, count: Int(lwork))
      }
      a.withUnsafeMutableBufferPointer { aBuffer in
        tau.withUnsafeBufferPointer { tauBuffer in
          work.withUnsafeMutableBufferPointer { workBuffer in
            Scalar._orgqr(
              m: &mValue, n: &kValue, k: &kValue, a: aBuffer.baseAddress, lda: &lda,
              tau: tauBuffer.baseAddress, work: workBuffer.baseAddress, lwork: &lwork, info: &info)
          }
        }
      }
      try checkLapack(info, "orgqr", Scalar.self)
    }

    var q = Matrix(rows: m, columns: k)
    for i in 0..<m {
      for j in 0..<k { q.storage[i &* k &+ j] = a[j &* m &+ i] }
    }
    return QRDecomposition(q: q, r: r)
  }
}
