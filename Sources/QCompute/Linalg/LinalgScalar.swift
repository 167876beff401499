import CBLAS
import CLAPACK
import QFormats

/// A floating-point type that OpenBLAS and LAPACK support, with the entry points `Matrix` calls.
///
/// The requirements map one to one onto the C routines (`s…` for `Float`, `d…` for `Double`) so that
/// the matrix code is written once. BLAS calls are always row-major; LAPACK calls follow the Fortran
/// convention (column-major, every argument by pointer). Callers check that dimensions fit `Int32`.
public protocol LinalgScalar: BinaryFloatingPoint, Sendable {
  /// The corresponding C functions are `cblas_sgemm` and `cblas_dgemm` (row-major).
  static func _gemm(
    transposeA: Bool, transposeB: Bool, m: Int32, n: Int32, k: Int32, alpha: Self,
    a: UnsafePointer<Self>?, lda: Int32, b: UnsafePointer<Self>?, ldb: Int32, beta: Self,
    c: UnsafeMutablePointer<Self>?, ldc: Int32)
  /// The corresponding C functions are `cblas_sgemv` and `cblas_dgemv` (row-major, unit strides).
  static func _gemv(
    transpose: Bool, m: Int32, n: Int32, alpha: Self, a: UnsafePointer<Self>?, lda: Int32,
    x: UnsafePointer<Self>?, beta: Self, y: UnsafeMutablePointer<Self>?)
  /// `C = alpha * Aᵀ A + beta * C` (or `A Aᵀ` without `transpose`), upper triangle only;
  /// `cblas_ssyrk`/`cblas_dsyrk` (row-major).
  static func _syrkUpper(
    transpose: Bool,
    n: Int32, k: Int32, alpha: Self, a: UnsafePointer<Self>?, lda: Int32, beta: Self,
    c: UnsafeMutablePointer<Self>?, ldc: Int32)
  /// Solves `L X = B` or `Lᵀ X = B` in place with a lower-triangular `L`;
  /// `cblas_strsm`/`cblas_dtrsm` (row-major, left side, non-unit diagonal).
  static func _trsmLeftLower(
    transpose: Bool, m: Int32, n: Int32, a: UnsafePointer<Self>?, lda: Int32,
    b: UnsafeMutablePointer<Self>?, ldb: Int32)
  /// The corresponding C functions are `cblas_snrm2` and `cblas_dnrm2` (unit stride).
  static func _nrm2(n: Int32, x: UnsafePointer<Self>?) -> Self

  /// The corresponding LAPACK routines are `spotrf` and `dpotrf`.
  static func _potrf(
    uplo: UnsafePointer<CChar>, n: UnsafePointer<Int32>, a: UnsafeMutablePointer<Self>?,
    lda: UnsafePointer<Int32>, info: UnsafeMutablePointer<Int32>)
  /// The corresponding LAPACK routines are `spotri` and `dpotri`.
  static func _potri(
    uplo: UnsafePointer<CChar>, n: UnsafePointer<Int32>, a: UnsafeMutablePointer<Self>?,
    lda: UnsafePointer<Int32>, info: UnsafeMutablePointer<Int32>)
  /// The corresponding LAPACK routines are `ssyevd` and `dsyevd`.
  static func _syevd(
    jobz: UnsafePointer<CChar>, uplo: UnsafePointer<CChar>, n: UnsafePointer<Int32>,
    a: UnsafeMutablePointer<Self>?, lda: UnsafePointer<Int32>, w: UnsafeMutablePointer<Self>?,
    work: UnsafeMutablePointer<Self>?, lwork: UnsafePointer<Int32>,
    iwork: UnsafeMutablePointer<Int32>?, liwork: UnsafePointer<Int32>,
    info: UnsafeMutablePointer<Int32>)
  /// The corresponding LAPACK routines are `sgesdd` and `dgesdd`.
  static func _gesdd(
    jobz: UnsafePointer<CChar>, m: UnsafePointer<Int32>, n: UnsafePointer<Int32>,
    a: UnsafeMutablePointer<Self>?, lda: UnsafePointer<Int32>, s: UnsafeMutablePointer<Self>?,
    u: UnsafeMutablePointer<Self>?, ldu: UnsafePointer<Int32>, vt: UnsafeMutablePointer<Self>?,
    ldvt: UnsafePointer<Int32>, work: UnsafeMutablePointer<Self>?, lwork: UnsafePointer<Int32>,
    iwork: UnsafeMutablePointer<Int32>?, info: UnsafeMutablePointer<Int32>)
  /// The corresponding LAPACK routines are `sgels` and `dgels`.
  static func _gels(
    trans: UnsafePointer<CChar>, m: UnsafePointer<Int32>, n: UnsafePointer<Int32>,
    nrhs: UnsafePointer<Int32>, a: UnsafeMutablePointer<Self>?, lda: UnsafePointer<Int32>,
    b: UnsafeMutablePointer<Self>?, ldb: UnsafePointer<Int32>, work: UnsafeMutablePointer<Self>?,
    lwork: UnsafePointer<Int32>, info: UnsafeMutablePointer<Int32>)
  /// The corresponding LAPACK routines are `sgelsd` and `dgelsd`.
  static func _gelsd(
    m: UnsafePointer<Int32>, n: UnsafePointer<Int32>, nrhs: UnsafePointer<Int32>,
    a: UnsafeMutablePointer<Self>?, lda: UnsafePointer<Int32>, b: UnsafeMutablePointer<Self>?,
    ldb: UnsafePointer<Int32>, s: UnsafeMutablePointer<Self>?, rcond: UnsafePointer<Self>,
    rank: UnsafeMutablePointer<Int32>, work: UnsafeMutablePointer<Self>?,
    lwork: UnsafePointer<Int32>, iwork: UnsafeMutablePointer<Int32>?,
    info: UnsafeMutablePointer<Int32>)
  /// The corresponding LAPACK routines are `sgeqrf` and `dgeqrf`.
  static func _geqrf(
    m: UnsafePointer<Int32>, n: UnsafePointer<Int32>, a: UnsafeMutablePointer<Self>?,
    lda: UnsafePointer<Int32>, tau: UnsafeMutablePointer<Self>?, work: UnsafeMutablePointer<Self>?,
    lwork: UnsafePointer<Int32>, info: UnsafeMutablePointer<Int32>)
  /// The corresponding LAPACK routines are `sorgqr` and `dorgqr`.
  static func _orgqr(
    m: UnsafePointer<Int32>, n: UnsafePointer<Int32>, k: UnsafePointer<Int32>,
    a: UnsafeMutablePointer<Self>?, lda: UnsafePointer<Int32>, tau: UnsafePointer<Self>?,
    work: UnsafeMutablePointer<Self>?, lwork: UnsafePointer<Int32>,
    info: UnsafeMutablePointer<Int32>)

  /// The letter that starts this type's LAPACK routine names (`s` or `d`), for error messages.
  static var _lapackPrefix: String { get }
}

@inline(__always)
private func cblasTranspose(_ transpose: Bool) -> CBLAS_TRANSPOSE {
  transpose ? CblasTrans : CblasNoTrans
}

extension Float: LinalgScalar {
  public static func _gemm(
    transposeA: Bool, transposeB: Bool, m: Int32, n: Int32, k: Int32, alpha: Float,
    a: UnsafePointer<Float>?, lda: Int32, b: UnsafePointer<Float>?, ldb: Int32, beta: Float,
    c: UnsafeMutablePointer<Float>?, ldc: Int32
  ) {
    ForkGate.enterShared()
    defer { ForkGate.leaveShared() }
    cblas_sgemm(
      CblasRowMajor, cblasTranspose(transposeA), cblasTranspose(transposeB), m, n, k, alpha, a, lda,
      b, ldb, beta, c, ldc)
  }

  public static func _gemv(
    transpose: Bool, m: Int32, n: Int32, alpha: Float, a: UnsafePointer<Float>?, lda: Int32,
    x: UnsafePointer<Float>?, beta: Float, y: UnsafeMutablePointer<Float>?
  ) {
    ForkGate.enterShared()
    defer { ForkGate.leaveShared() }
    cblas_sgemv(CblasRowMajor, cblasTranspose(transpose), m, n, alpha, a, lda, x, 1, beta, y, 1)
  }

  public static func _syrkUpper(
    transpose: Bool,
    n: Int32, k: Int32, alpha: Float, a: UnsafePointer<Float>?, lda: Int32, beta: Float,
    c: UnsafeMutablePointer<Float>?, ldc: Int32
  ) {
    ForkGate.enterShared()
    defer { ForkGate.leaveShared() }
    cblas_ssyrk(
      CblasRowMajor, CblasUpper, cblasTranspose(transpose), n, k, alpha, a, lda, beta, c, ldc)
  }

  public static func _trsmLeftLower(
    transpose: Bool, m: Int32, n: Int32, a: UnsafePointer<Float>?, lda: Int32,
    b: UnsafeMutablePointer<Float>?, ldb: Int32
  ) {
    ForkGate.enterShared()
    defer { ForkGate.leaveShared() }
    cblas_strsm(
      CblasRowMajor, CblasLeft, CblasLower, cblasTranspose(transpose), CblasNonUnit, m, n, 1, a,
      lda,
      b, ldb)
  }

  public static func _nrm2(n: Int32, x: UnsafePointer<Float>?) -> Float {
    ForkGate.enterShared()
    defer { ForkGate.leaveShared() }
    return cblas_snrm2(n, x, 1)
  }

  public static func _potrf(
    uplo: UnsafePointer<CChar>, n: UnsafePointer<Int32>, a: UnsafeMutablePointer<Float>?,
    lda: UnsafePointer<Int32>, info: UnsafeMutablePointer<Int32>
  ) {
    ForkGate.enterShared()
    defer { ForkGate.leaveShared() }
    spotrf_(uplo, n, a, lda, info)
  }

  public static func _potri(
    uplo: UnsafePointer<CChar>, n: UnsafePointer<Int32>, a: UnsafeMutablePointer<Float>?,
    lda: UnsafePointer<Int32>, info: UnsafeMutablePointer<Int32>
  ) {
    ForkGate.enterShared()
    defer { ForkGate.leaveShared() }
    spotri_(uplo, n, a, lda, info)
  }

  public static func _syevd(
    jobz: UnsafePointer<CChar>, uplo: UnsafePointer<CChar>, n: UnsafePointer<Int32>,
    a: UnsafeMutablePointer<Float>?, lda: UnsafePointer<Int32>, w: UnsafeMutablePointer<Float>?,
    work: UnsafeMutablePointer<Float>?, lwork: UnsafePointer<Int32>,
    iwork: UnsafeMutablePointer<Int32>?, liwork: UnsafePointer<Int32>,
    info: UnsafeMutablePointer<Int32>
  ) {
    ForkGate.enterShared()
    defer { ForkGate.leaveShared() }
    ssyevd_(jobz, uplo, n, a, lda, w, work, lwork, iwork, liwork, info)
  }

  public static func _gesdd(
    jobz: UnsafePointer<CChar>, m: UnsafePointer<Int32>, n: UnsafePointer<Int32>,
    a: UnsafeMutablePointer<Float>?, lda: UnsafePointer<Int32>, s: UnsafeMutablePointer<Float>?,
    u: UnsafeMutablePointer<Float>?, ldu: UnsafePointer<Int32>, vt: UnsafeMutablePointer<Float>?,
    ldvt: UnsafePointer<Int32>, work: UnsafeMutablePointer<Float>?, lwork: UnsafePointer<Int32>,
    iwork: UnsafeMutablePointer<Int32>?, info: UnsafeMutablePointer<Int32>
  ) {
    ForkGate.enterShared()
    defer { ForkGate.leaveShared() }
    sgesdd_(jobz, m, n, a, lda, s, u, ldu, vt, ldvt, work, lwork, iwork, info)
  }

  public static func _gels(
    trans: UnsafePointer<CChar>, m: UnsafePointer<Int32>, n: UnsafePointer<Int32>,
    nrhs: UnsafePointer<Int32>, a: UnsafeMutablePointer<Float>?, lda: UnsafePointer<Int32>,
    b: UnsafeMutablePointer<Float>?, ldb: UnsafePointer<Int32>, work: UnsafeMutablePointer<Float>?,
    lwork: UnsafePointer<Int32>, info: UnsafeMutablePointer<Int32>
  ) {
    ForkGate.enterShared()
    defer { ForkGate.leaveShared() }
    sgels_(trans, m, n, nrhs, a, lda, b, ldb, work, lwork, info)
  }

  public static func _gelsd(
    m: UnsafePointer<Int32>, n: UnsafePointer<Int32>, nrhs: UnsafePointer<Int32>,
    a: UnsafeMutablePointer<Float>?, lda: UnsafePointer<Int32>, b: UnsafeMutablePointer<Float>?,
    ldb: UnsafePointer<Int32>, s: UnsafeMutablePointer<Float>?, rcond: UnsafePointer<Float>,
    rank: UnsafeMutablePointer<Int32>, work: UnsafeMutablePointer<Float>?,
    lwork: UnsafePointer<Int32>, iwork: UnsafeMutablePointer<Int32>?,
    info: UnsafeMutablePointer<Int32>
  ) {
    ForkGate.enterShared()
    defer { ForkGate.leaveShared() }
    sgelsd_(m, n, nrhs, a, lda, b, ldb, s, rcond, rank, work, lwork, iwork, info)
  }

  public static func _geqrf(
    m: UnsafePointer<Int32>, n: UnsafePointer<Int32>, a: UnsafeMutablePointer<Float>?,
    lda: UnsafePointer<Int32>, tau: UnsafeMutablePointer<Float>?,
    work: UnsafeMutablePointer<Float>?, lwork: UnsafePointer<Int32>,
    info: UnsafeMutablePointer<Int32>
  ) {
    ForkGate.enterShared()
    defer { ForkGate.leaveShared() }
    sgeqrf_(m, n, a, lda, tau, work, lwork, info)
  }

  public static func _orgqr(
    m: UnsafePointer<Int32>, n: UnsafePointer<Int32>, k: UnsafePointer<Int32>,
    a: UnsafeMutablePointer<Float>?, lda: UnsafePointer<Int32>, tau: UnsafePointer<Float>?,
    work: UnsafeMutablePointer<Float>?, lwork: UnsafePointer<Int32>,
    info: UnsafeMutablePointer<Int32>
  ) {
    ForkGate.enterShared()
    defer { ForkGate.leaveShared() }
    sorgqr_(m, n, k, a, lda, tau, work, lwork, info)
  }

  public static var _lapackPrefix: String { "s" }
}

extension Double: LinalgScalar {
  public static func _gemm(
    transposeA: Bool, transposeB: Bool, m: Int32, n: Int32, k: Int32, alpha: Double,
    a: UnsafePointer<Double>?, lda: Int32, b: UnsafePointer<Double>?, ldb: Int32, beta: Double,
    c: UnsafeMutablePointer<Double>?, ldc: Int32
  ) {
    ForkGate.enterShared()
    defer { ForkGate.leaveShared() }
    cblas_dgemm(
      CblasRowMajor, cblasTranspose(transposeA), cblasTranspose(transposeB), m, n, k, alpha, a, lda,
      b, ldb, beta, c, ldc)
  }

  public static func _gemv(
    transpose: Bool, m: Int32, n: Int32, alpha: Double, a: UnsafePointer<Double>?, lda: Int32,
    x: UnsafePointer<Double>?, beta: Double, y: UnsafeMutablePointer<Double>?
  ) {
    ForkGate.enterShared()
    defer { ForkGate.leaveShared() }
    cblas_dgemv(CblasRowMajor, cblasTranspose(transpose), m, n, alpha, a, lda, x, 1, beta, y, 1)
  }

  public static func _syrkUpper(
    transpose: Bool,
    n: Int32, k: Int32, alpha: Double, a: UnsafePointer<Double>?, lda: Int32, beta: Double,
    c: UnsafeMutablePointer<Double>?, ldc: Int32
  ) {
    ForkGate.enterShared()
    defer { ForkGate.leaveShared() }
    cblas_dsyrk(
      CblasRowMajor, CblasUpper, cblasTranspose(transpose), n, k, alpha, a, lda, beta, c, ldc)
  }

  public static func _trsmLeftLower(
    transpose: Bool, m: Int32, n: Int32, a: UnsafePointer<Double>?, lda: Int32,
    b: UnsafeMutablePointer<Double>?, ldb: Int32
  ) {
    ForkGate.enterShared()
    defer { ForkGate.leaveShared() }
    cblas_dtrsm(
      CblasRowMajor, CblasLeft, CblasLower, cblasTranspose(transpose), CblasNonUnit, m, n, 1, a,
      lda,
      b, ldb)
  }

  public static func _nrm2(n: Int32, x: UnsafePointer<Double>?) -> Double {
    ForkGate.enterShared()
    defer { ForkGate.leaveShared() }
    return cblas_dnrm2(n, x, 1)
  }

  public static func _potrf(
    uplo: UnsafePointer<CChar>, n: UnsafePointer<Int32>, a: UnsafeMutablePointer<Double>?,
    lda: UnsafePointer<Int32>, info: UnsafeMutablePointer<Int32>
  ) {
    ForkGate.enterShared()
    defer { ForkGate.leaveShared() }
    dpotrf_(uplo, n, a, lda, info)
  }

  public static func _potri(
    uplo: UnsafePointer<CChar>, n: UnsafePointer<Int32>, a: UnsafeMutablePointer<Double>?,
    lda: UnsafePointer<Int32>, info: UnsafeMutablePointer<Int32>
  ) {
    ForkGate.enterShared()
    defer { ForkGate.leaveShared() }
    dpotri_(uplo, n, a, lda, info)
  }

  public static func _syevd(
    jobz: UnsafePointer<CChar>, uplo: UnsafePointer<CChar>, n: UnsafePointer<Int32>,
    a: UnsafeMutablePointer<Double>?, lda: UnsafePointer<Int32>, w: UnsafeMutablePointer<Double>?,
    work: UnsafeMutablePointer<Double>?, lwork: UnsafePointer<Int32>,
    iwork: UnsafeMutablePointer<Int32>?, liwork: UnsafePointer<Int32>,
    info: UnsafeMutablePointer<Int32>
  ) {
    ForkGate.enterShared()
    defer { ForkGate.leaveShared() }
    dsyevd_(jobz, uplo, n, a, lda, w, work, lwork, iwork, liwork, info)
  }

  public static func _gesdd(
    jobz: UnsafePointer<CChar>, m: UnsafePointer<Int32>, n: UnsafePointer<Int32>,
    a: UnsafeMutablePointer<Double>?, lda: UnsafePointer<Int32>, s: UnsafeMutablePointer<Double>?,
    u: UnsafeMutablePointer<Double>?, ldu: UnsafePointer<Int32>,
    vt: UnsafeMutablePointer<Double>?, ldvt: UnsafePointer<Int32>,
    work: UnsafeMutablePointer<Double>?, lwork: UnsafePointer<Int32>,
    iwork: UnsafeMutablePointer<Int32>?, info: UnsafeMutablePointer<Int32>
  ) {
    ForkGate.enterShared()
    defer { ForkGate.leaveShared() }
    dgesdd_(jobz, m, n, a, lda, s, u, ldu, vt, ldvt, work, lwork, iwork, info)
  }

  public static func _gels(
    trans: UnsafePointer<CChar>, m: UnsafePointer<Int32>, n: UnsafePointer<Int32>,
    nrhs: UnsafePointer<Int32>, a: UnsafeMutablePointer<Double>?, lda: UnsafePointer<Int32>,
    b: UnsafeMutablePointer<Double>?, ldb: UnsafePointer<Int32>,
    work: UnsafeMutablePointer<Double>?, lwork: UnsafePointer<Int32>,
    info: UnsafeMutablePointer<Int32>
  ) {
    ForkGate.enterShared()
    defer { ForkGate.leaveShared() }
    dgels_(trans, m, n, nrhs, a, lda, b, ldb, work, lwork, info)
  }

  public static func _gelsd(
    m: UnsafePointer<Int32>, n: UnsafePointer<Int32>, nrhs: UnsafePointer<Int32>,
    a: UnsafeMutablePointer<Double>?, lda: UnsafePointer<Int32>, b: UnsafeMutablePointer<Double>?,
    ldb: UnsafePointer<Int32>, s: UnsafeMutablePointer<Double>?, rcond: UnsafePointer<Double>,
    rank: UnsafeMutablePointer<Int32>, work: UnsafeMutablePointer<Double>?,
    lwork: UnsafePointer<Int32>, iwork: UnsafeMutablePointer<Int32>?,
    info: UnsafeMutablePointer<Int32>
  ) {
    ForkGate.enterShared()
    defer { ForkGate.leaveShared() }
    dgelsd_(m, n, nrhs, a, lda, b, ldb, s, rcond, rank, work, lwork, iwork, info)
  }

  public static func _geqrf(
    m: UnsafePointer<Int32>, n: UnsafePointer<Int32>, a: UnsafeMutablePointer<Double>?,
    lda: UnsafePointer<Int32>, tau: UnsafeMutablePointer<Double>?,
    work: UnsafeMutablePointer<Double>?, lwork: UnsafePointer<Int32>,
    info: UnsafeMutablePointer<Int32>
  ) {
    ForkGate.enterShared()
    defer { ForkGate.leaveShared() }
    dgeqrf_(m, n, a, lda, tau, work, lwork, info)
  }

  public static func _orgqr(
    m: UnsafePointer<Int32>, n: UnsafePointer<Int32>, k: UnsafePointer<Int32>,
    a: UnsafeMutablePointer<Double>?, lda: UnsafePointer<Int32>, tau: UnsafePointer<Double>?,
    work: UnsafeMutablePointer<Double>?, lwork: UnsafePointer<Int32>,
    info: UnsafeMutablePointer<Int32>
  ) {
    ForkGate.enterShared()
    defer { ForkGate.leaveShared() }
    dorgqr_(m, n, k, a, lda, tau, work, lwork, info)
  }

  public static var _lapackPrefix: String { "d" }
}
