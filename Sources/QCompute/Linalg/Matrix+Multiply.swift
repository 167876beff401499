/// Entry points on raw buffers for hot paths that keep their own storage.
public enum Linalg {
  /// `C = alpha * op(A) * op(B) + beta * C` on contiguous row-major buffers, through `cblas_?gemm`.
  ///
  /// `aRows` × `aColumns` and `bRows` × `bColumns` are the stored shapes; `op` transposes when asked.
  /// `c` must hold exactly `op(A).rows * op(B).columns` elements.
  /// - Throws: `ComputeError.shapeMismatch` when the shapes or buffer sizes disagree,
  ///   `ComputeError.dimensionTooLarge` when a dimension does not fit `Int32`.
  public static func gemm<Scalar: LinalgScalar>(
    _ a: UnsafeBufferPointer<Scalar>, rows aRows: Int, columns aColumns: Int,
    transposeA: Bool = false,
    _ b: UnsafeBufferPointer<Scalar>, rows bRows: Int, columns bColumns: Int,
    transposeB: Bool = false,
    into c: UnsafeMutableBufferPointer<Scalar>, alpha: Scalar = 1, beta: Scalar = 0
  ) throws(ComputeError) {
    let operation = "gemm"
    let m = transposeA ? aColumns : aRows
    let k = transposeA ? aRows : aColumns
    let kB = transposeB ? bColumns : bRows
    let n = transposeB ? bRows : bColumns
    guard aRows >= 0, aColumns >= 0, bRows >= 0, bColumns >= 0,
      aRows.multipliedReportingOverflow(by: aColumns) == (a.count, false),
      bRows.multipliedReportingOverflow(by: bColumns) == (b.count, false)
    else {
      throw .shapeMismatch(
        operation: operation,
        detail:
          "buffers of \(a.count) and \(b.count) elements for \(aRows) x \(aColumns) and \(bRows) x \(bColumns)"
      )
    }
    guard k == kB else {
      throw .shapeMismatch(
        operation: operation,
        detail: "op(A) is \(m) x \(k), op(B) is \(kB) x \(n)")
    }
    guard m.multipliedReportingOverflow(by: n) == (c.count, false) else {
      throw .shapeMismatch(
        operation: operation, detail: "C has \(c.count) elements, the product is \(m) x \(n)")
    }
    if m == 0 || n == 0 { return }
    if k == 0 {
      // BLAS rejects a leading dimension of 0; the product is empty, so C = beta * C.
      for index in c.indices { c[index] = beta == 0 ? 0 : beta * c[index] }
      return
    }
    Scalar._gemm(
      transposeA: transposeA, transposeB: transposeB,
      m: try blasInt(m, operation), n: try blasInt(n, operation), k: try blasInt(k, operation),
      alpha: alpha, a: a.baseAddress, lda: try blasInt(aColumns, operation),
      b: b.baseAddress, ldb: try blasInt(bColumns, operation), beta: beta,
      c: c.baseAddress, ldc: try blasInt(n, operation))
  }
}

extension Matrix {
  /// `alpha * op(a) * op(b)`, through `cblas_?gemm`.
  /// - Throws: `ComputeError.shapeMismatch` when the inner dimensions differ.
  public static func matmul(
    _ a: Matrix, _ b: Matrix, transposeA: Bool = false, transposeB: Bool = false, alpha: Scalar = 1
  ) throws(ComputeError) -> Matrix {
    var result = Matrix(
      rows: transposeA ? a.columns : a.rows, columns: transposeB ? b.rows : b.columns)
    try result.addProduct(
      a, b, transposeA: transposeA, transposeB: transposeB, alpha: alpha, beta: 0)
    return result
  }

  /// `self * op(other)` (or `op(self) * op(other)`), through `cblas_?gemm`.
  /// - Throws: `ComputeError.shapeMismatch` when the inner dimensions differ.
  public func matmul(
    _ other: Matrix, transposeSelf: Bool = false, transposeOther: Bool = false, alpha: Scalar = 1
  ) throws(ComputeError) -> Matrix {
    try Matrix.matmul(
      self, other, transposeA: transposeSelf, transposeB: transposeOther, alpha: alpha)
  }

  /// `self = alpha * op(a) * op(b) + beta * self`, the full GEMM update in place.
  /// - Throws: `ComputeError.shapeMismatch` when the shapes do not fit together.
  public mutating func addProduct(
    _ a: Matrix, _ b: Matrix, transposeA: Bool = false, transposeB: Bool = false,
    alpha: Scalar = 1, beta: Scalar = 1
  ) throws(ComputeError) {
    let (rows, columns) = (self.rows, self.columns)
    let expectedRows = transposeA ? a.columns : a.rows
    let expectedColumns = transposeB ? b.rows : b.columns
    guard rows == expectedRows, columns == expectedColumns else {
      throw .shapeMismatch(
        operation: "matmul",
        detail:
          "result is \(rows) x \(columns), op(A) op(B) is \(expectedRows) x \(expectedColumns)")
    }
    try a.storage.withUnsafeBufferPointer { (aBuffer) throws(ComputeError) in
      try b.storage.withUnsafeBufferPointer { (bBuffer) throws(ComputeError) in
        try storage.withUnsafeMutableBufferPointer { (cBuffer) throws(ComputeError) in
          try Linalg.gemm(
            aBuffer, rows: a.rows, columns: a.columns, transposeA: transposeA,
            bBuffer, rows: b.rows, columns: b.columns, transposeB: transposeB,
            into: cBuffer, alpha: alpha, beta: beta)
        }
      }
    }
  }

  /// `op(self) * x` for a vector `x`, through `cblas_?gemv`.
  /// - Throws: `ComputeError.shapeMismatch` when `x` has the wrong length.
  public func matvec(_ x: [Scalar], transpose: Bool = false) throws(ComputeError) -> [Scalar] {
    let operation = "matvec"
    let (inputLength, outputLength) = transpose ? (rows, columns) : (columns, rows)
    guard x.count == inputLength else {
      throw .shapeMismatch(
        operation: operation,
        detail:
          "vector of \(x.count) elements for a \(transpose ? "transposed " : "")\(rows) x \(columns) matrix"
      )
    }
    var y = [Scalar](repeating: 0, count: outputLength)
    if isEmpty { return y }
    let m = try blasInt(rows, operation)
    let n = try blasInt(columns, operation)
    storage.withUnsafeBufferPointer { a in
      x.withUnsafeBufferPointer { xBuffer in
        y.withUnsafeMutableBufferPointer { yBuffer in
          Scalar._gemv(
            transpose: transpose, m: m, n: n, alpha: 1, a: a.baseAddress, lda: n,
            x: xBuffer.baseAddress, beta: 0, y: yBuffer.baseAddress)
        }
      }
    }
    return y
  }

  /// The Gram matrix `Xᵀ X` (`columns` × `columns`), through `cblas_?syrk`, both triangles filled.
  ///
  /// SYRK computes one triangle at half the cost of GEMM; the other is mirrored.
  public func gram() throws(ComputeError) -> Matrix {
    try symmetricProduct(transposeFirst: true)
  }

  /// The Gram matrix of the rows, `X Xᵀ` (`rows` × `rows`), through `cblas_?syrk`.
  public func rowGram() throws(ComputeError) -> Matrix {
    try symmetricProduct(transposeFirst: false)
  }

  private func symmetricProduct(transposeFirst: Bool) throws(ComputeError) -> Matrix {
    let operation = "gram"
    let order = transposeFirst ? columns : rows
    let inner = transposeFirst ? rows : columns
    var result = Matrix(rows: order, columns: order)
    if order == 0 || inner == 0 { return result }
    let n = try blasInt(order, operation)
    let k = try blasInt(inner, operation)
    let lda = try blasInt(columns, operation)
    storage.withUnsafeBufferPointer { a in
      result.storage.withUnsafeMutableBufferPointer { c in
        Scalar._syrkUpper(
          transpose: transposeFirst, n: n, k: k, alpha: 1, a: a.baseAddress, lda: lda, beta: 0,
          c: c.baseAddress, ldc: n)
      }
    }
    result.mirrorUpperToLower()
    return result
  }
}
