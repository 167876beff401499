import QCompute
import Testing

@Suite struct LinalgProductTests {
  @Test func twoByTwoProduct() throws {
    let a = try Matrix<Double>([[1, 2], [3, 4]])
    let b = try Matrix<Double>([[5, 6], [7, 8]])
    #expect(try a.matmul(b).elements == [19, 22, 43, 50])
    // Aᵀ B = [[1,3],[2,4]] [[5,6],[7,8]]
    #expect(try Matrix.matmul(a, b, transposeA: true).elements == [26, 30, 38, 44])
    // A Bᵀ = [[1,2],[3,4]] [[5,7],[6,8]]
    #expect(try Matrix.matmul(a, b, transposeB: true).elements == [17, 23, 39, 53])
    #expect(try Matrix.matmul(a, b, alpha: 2).elements == [38, 44, 86, 100])
  }

  @Test func addProductScalesTheAccumulator() throws {
    let a = try Matrix<Float>([[1, 2], [3, 4]])
    var c = try Matrix<Float>([[1, 1], [1, 1]])
    try c.addProduct(a, Matrix.identity(2), alpha: 2, beta: 3)
    #expect(c.elements == [5, 7, 9, 11])
  }

  @Test func emptyInnerDimensionGivesZeros() throws {
    let a = Matrix<Float>(rows: 3, columns: 0)
    let b = Matrix<Float>(rows: 0, columns: 4)
    let c = try a.matmul(b)
    #expect(c.rows == 3 && c.columns == 4 && c.elements.allSatisfy { $0 == 0 })
    var d = try Matrix<Float>([[1, 2]])
    try d.addProduct(Matrix(rows: 1, columns: 0), Matrix(rows: 0, columns: 2), beta: 3)
    #expect(d.elements == [3, 6])
  }

  @Test func innerDimensionsMustAgree() {
    let a = Matrix<Double>(rows: 2, columns: 3)
    #expect(throws: ComputeError.self) { try a.matmul(a) }
    #expect(throws: ComputeError.self) { try a.matvec([1, 2]) }
  }

  @Test func rawGemmChecksBufferSizes() {
    let a: [Float] = [1, 2, 3, 4]
    var c = [Float](repeating: 0, count: 3)
    #expect(throws: ComputeError.self) {
      try a.withUnsafeBufferPointer { a in
        try c.withUnsafeMutableBufferPointer { c in
          try Linalg.gemm(a, rows: 2, columns: 2, a, rows: 2, columns: 2, into: c)
        }
      }
    }
  }

  @Test func rawGemmOnBuffers() throws {
    let a: [Double] = [1, 2, 3, 4, 5, 6]  // 2 x 3
    var c = [Double](repeating: 1, count: 4)
    try a.withUnsafeBufferPointer { a in
      try c.withUnsafeMutableBufferPointer { c in
        // A Aᵀ + C = [[14, 32], [32, 77]] + 1
        try Linalg.gemm(
          a, rows: 2, columns: 3, a, rows: 2, columns: 3, transposeB: true, into: c, beta: 1)
      }
    }
    #expect(c == [15, 33, 33, 78])
  }

  @Test func matvecBothWays() throws {
    let a = try Matrix<Float>([[1, 2, 3], [4, 5, 6]])
    #expect(try a.matvec([1, 0, -1]) == [-2, -2])
    #expect(try a.matvec([1, 1], transpose: true) == [5, 7, 9])
  }

  @Test func gramOfKnownMatrix() throws {
    let x = try Matrix<Double>([[1, 2], [3, 4], [5, 6]])
    // XᵀX = [[35, 44], [44, 56]], XXᵀ = [[5, 11, 17], [11, 25, 39], [17, 39, 61]]
    #expect(try x.gram().elements == [35, 44, 44, 56])
    #expect(try x.rowGram().elements == [5, 11, 17, 11, 25, 39, 17, 39, 61])
  }

  @Test(arguments: Precision.allCases, ["1x1", "7x5", "5x7", "0x4", "64x65"])
  func matmulMatchesNumpy(precision: Precision, shape: String) throws {
    switch precision {
    case .float: try checkMatmul(Float.self, shape, tolerance: precision.tolerance())
    case .double: try checkMatmul(Double.self, shape, tolerance: precision.tolerance())
    }
  }

  private func checkMatmul<Scalar: LinalgScalar>(
    _: Scalar.Type, _ shape: String, tolerance: Double
  ) throws {
    let fixtures = try LinalgFixtures.shared()
    let a: Matrix<Scalar> = try fixtures.matrix("g.\(shape)")
    let b: Matrix<Scalar> = try fixtures.matrix("matmul.\(shape).b")
    let expected: Matrix<Double> = try fixtures.matrix("matmul.\(shape).ab")
    // The products run over up to 65 terms; allow for the accumulated rounding.
    let scaled = tolerance * 10
    expectClose(try a.matmul(b), expected, tolerance: scaled, "A B")
    expectClose(
      try Matrix.matmul(a.transposed(), b, transposeA: true), expected, tolerance: scaled, "(Aᵀ)ᵀ B"
    )
    expectClose(
      try Matrix.matmul(a, b.transposed(), transposeB: true), expected, tolerance: scaled, "A (Bᵀ)ᵀ"
    )
    let column = b.column(0)
    expectClose(try a.matvec(column), expected.column(0), tolerance: scaled, "A b")
    expectClose(
      try a.transposed().matvec(column, transpose: true), expected.column(0), tolerance: scaled,
      "(Aᵀ)ᵀ b")
    let gram: Matrix<Double> = try fixtures.matrix("gram.\(shape)")
    let ours = try a.gram()
    expectClose(ours, gram, tolerance: scaled, "XᵀX")
    #expect(ours == ours.transposed(), "XᵀX is exactly symmetric")
    expectClose(try a.transposed().rowGram(), gram, tolerance: scaled, "(Xᵀ)(Xᵀ)ᵀ")
  }
}
