import QCompute
import Testing

@Suite struct LinalgLeastSquaresTests {
  @Test func fitsALine() throws {
    // Points (0, 1), (1, 3), (2, 5), (3, 7) lie on y = 1 + 2x.
    let a = try Matrix<Double>([[1, 0], [1, 1], [1, 2], [1, 3]])
    let b = try Matrix<Double>([[1], [3], [5], [7]])
    expectClose(try Matrix.leastSquares(a, b).elements, [1, 2], tolerance: 1e-14, "gels")
    let svd = try Matrix.leastSquares(a, b, rcond: -1)
    expectClose(svd.solution.elements, [1, 2], tolerance: 1e-14, "gelsd")
    #expect(svd.rank == 2)
  }

  @Test func minimumNormForUnderdetermined() throws {
    // x + y = 2 has the minimum-norm solution (1, 1).
    let a = try Matrix<Float>([[1, 1]])
    let b = try Matrix<Float>([[2]])
    expectClose(try Matrix.leastSquares(a, b).elements, [1, 1], tolerance: 1e-6, "gels")
    expectClose(
      try Matrix.leastSquares(a, b, rcond: -1).solution.elements, [1, 1], tolerance: 1e-6, "gelsd")
  }

  @Test func rowCountsMustAgree() {
    let a = Matrix<Double>(rows: 3, columns: 2)
    let b = Matrix<Double>(rows: 2, columns: 1)
    #expect(throws: ComputeError.self) { try Matrix.leastSquares(a, b) }
    #expect(throws: ComputeError.self) { try Matrix.leastSquares(a, b, rcond: -1) }
  }

  @Test func emptySystems() throws {
    let x = try Matrix.leastSquares(
      Matrix<Double>(rows: 0, columns: 3), Matrix(rows: 0, columns: 2))
    #expect(x == Matrix(rows: 3, columns: 2))
    let y = try Matrix.leastSquares(
      Matrix<Double>(rows: 4, columns: 3), Matrix(rows: 4, columns: 0), rcond: -1)
    #expect(y.solution.rows == 3 && y.solution.columns == 0 && y.rank == 0)
  }

  @Test(arguments: Precision.allCases, ["1x1", "7x5", "5x7", "64x65"])
  func matchesNumpy(precision: Precision, shape: String) throws {
    switch precision {
    case .float: try check(Float.self, shape, precision)
    case .double: try check(Double.self, shape, precision)
    }
  }

  private func check<Scalar: LinalgScalar>(_: Scalar.Type, _ shape: String, _ precision: Precision)
    throws
  {
    let fixtures = try LinalgFixtures.shared()
    let a: Matrix<Scalar> = try fixtures.matrix("g.\(shape)")
    let b: Matrix<Scalar> = try fixtures.matrix("lstsq.\(shape).b")
    let expected: Matrix<Double> = try fixtures.matrix("lstsq.\(shape).x")
    // Nearly square random systems have condition numbers in the hundreds.
    let tolerance = precision.tolerance(shape == "64x65" ? 5000 : 100)
    expectClose(try Matrix.leastSquares(a, b), expected, tolerance: tolerance, "gels")
    let svd = try Matrix.leastSquares(a, b, rcond: -1)
    expectClose(svd.solution, expected, tolerance: tolerance, "gelsd")
    #expect(svd.rank == Int(try fixtures.vector("lstsq.\(shape).rank")[0]))
    expectClose(
      svd.singularValues, try fixtures.vector("svd.\(shape).s"), tolerance: tolerance, "s")
  }

  @Test(arguments: Precision.allCases)
  func rankDeficientSystem(precision: Precision) throws {
    switch precision {
    case .float: try checkRankDeficient(Float.self, precision)
    case .double: try checkRankDeficient(Double.self, precision)
    }
  }

  private func checkRankDeficient<Scalar: LinalgScalar>(_: Scalar.Type, _ precision: Precision)
    throws
  {
    let fixtures = try LinalgFixtures.shared()
    let a: Matrix<Scalar> = try fixtures.matrix("lstsq.rank3.a")
    let b: Matrix<Scalar> = try fixtures.matrix("lstsq.rank3.b")
    let solved = try Matrix.leastSquares(a, b, rcond: Scalar(precision == .float ? 1e-5 : 1e-10))
    #expect(solved.rank == 3)
    let tolerance = precision.tolerance(1000)
    expectClose(solved.solution, try fixtures.matrix("lstsq.rank3.x"), tolerance: tolerance, "x")
    expectClose(
      solved.singularValues, try fixtures.vector("lstsq.rank3.s"), tolerance: tolerance, "s")
  }

  @Test func gelsRefusesAnExactlySingularMatrix() throws {
    // The second column is zero, so the R factor has a zero on its diagonal.
    let a = try Matrix<Double>([[1, 0], [2, 0], [3, 0]])
    let b = try Matrix<Double>([[1], [2], [3]])
    #expect(throws: ComputeError.rankDeficient(operation: "leastSquares", column: 2)) {
      try Matrix.leastSquares(a, b)
    }
  }
}
