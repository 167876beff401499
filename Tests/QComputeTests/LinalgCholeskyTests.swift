import QCompute
import Testing

@Suite struct LinalgCholeskyTests {
  @Test func knownFactorAndInverse() throws {
    // [[4, 2], [2, 3]] = L Lᵀ with L = [[2, 0], [1, sqrt 2]]; inverse = [[3, -2], [-2, 4]] / 8.
    let a = try Matrix<Double>([[4, 2], [2, 3]])
    let l = try a.cholesky()
    #expect(l[0, 0] == 2 && l[0, 1] == 0 && l[1, 0] == 1)
    #expect(l[1, 1].isClose(to: 2.0.squareRoot(), relativeTolerance: 1e-15))
    expectClose(
      try a.inverseSPD().elements, [0.375, -0.25, -0.25, 0.5], tolerance: 1e-15, "inverse")
    // [[4, 2], [2, 3]] x = [8, 7] has x = [1.25, 1.5].
    let x = try a.solveSPD(Matrix([[8], [7]]))
    expectClose(x.elements, [1.25, 1.5], tolerance: 1e-15, "solve")
  }

  @Test func knownThreeByThreeInverse() throws {
    // The second-difference matrix; its inverse is known in closed form.
    let a = try Matrix<Float>([[2, -1, 0], [-1, 2, -1], [0, -1, 2]])
    let expected: [Double] = [3, 2, 1, 2, 4, 2, 1, 2, 3].map { $0 / 4 }
    expectClose(try a.inverseSPD().elements, expected, tolerance: 1e-6, "inverse")
  }

  @Test func onlyTheLowerTriangleIsRead() throws {
    let full = try Matrix<Double>([[4, 2], [2, 3]])
    let lowerOnly = try Matrix<Double>([[4, 999], [2, 3]])
    #expect(try lowerOnly.cholesky() == full.cholesky())
    #expect(try lowerOnly.inverseSPD() == full.inverseSPD())
  }

  @Test func indefiniteMatrixNamesTheMinor() throws {
    // The leading 1x1 minor is positive, the 2x2 minor has determinant 1 - 4 < 0.
    let a = try Matrix<Double>([[1, 2], [2, 1]])
    #expect(throws: ComputeError.notPositiveDefinite(operation: "cholesky", order: 2)) {
      try a.cholesky()
    }
    #expect(throws: ComputeError.notPositiveDefinite(operation: "inverseSPD", order: 2)) {
      try a.inverseSPD()
    }
  }

  @Test func shapesAreChecked() throws {
    #expect(throws: ComputeError.self) { try Matrix<Float>(rows: 2, columns: 3).cholesky() }
    #expect(throws: ComputeError.self) {
      try Matrix<Float>.identity(2).solveSPD(Matrix(rows: 3, columns: 1))
    }
  }

  @Test func emptyMatrix() throws {
    #expect(try Matrix<Float>(rows: 0, columns: 0).cholesky().isEmpty)
    #expect(try Matrix<Float>(rows: 0, columns: 0).inverseSPD().isEmpty)
  }

  @Test(arguments: Precision.allCases, [1, 7, 65])
  func matchesNumpy(precision: Precision, order: Int) throws {
    switch precision {
    case .float: try check(Float.self, order, precision)
    case .double: try check(Double.self, order, precision)
    }
  }

  private func check<Scalar: LinalgScalar>(_: Scalar.Type, _ order: Int, _ precision: Precision)
    throws
  {
    let fixtures = try LinalgFixtures.shared()
    let a: Matrix<Scalar> = try fixtures.matrix("spd.\(order)")
    let tolerance = precision.tolerance(100)

    let l = try a.cholesky()
    expectClose(l, try fixtures.matrix("chol.\(order)"), tolerance: tolerance, "L")
    for i in 0..<order {
      for j in (i + 1)..<max(i + 1, order) { #expect(l[i, j] == 0) }
    }
    expectClose(try l.matmul(l, transposeOther: true), a.asDouble, tolerance: tolerance, "L Lᵀ")

    let inverse = try a.inverseSPD()
    #expect(inverse == inverse.transposed())
    #expect(distanceFromIdentity(try a.matmul(inverse)) <= tolerance, "A A⁻¹")
    if order <= 7 {
      expectClose(inverse, try fixtures.matrix("inv.\(order)"), tolerance: tolerance, "A⁻¹")
    }

    let b: Matrix<Scalar> = try fixtures.matrix("solve.\(order).b")
    expectClose(
      try a.solveSPD(b), try fixtures.matrix("solve.\(order).x"), tolerance: tolerance, "X")
  }
}
