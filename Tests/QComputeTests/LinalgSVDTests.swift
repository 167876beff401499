import QCompute
import Testing

@Suite struct LinalgSVDTests {
  @Test func knownSingularValues() throws {
    // [[3, 0], [4, 5]]: AᵀA = [[25, 20], [20, 25]] has eigenvalues 45 and 5.
    let a = try Matrix<Double>([[3, 0], [4, 5]])
    expectClose(
      try a.singularValues(), [Double(45).squareRoot(), Double(5).squareRoot()], tolerance: 1e-15,
      "s")
    // A rank-one 2 x 3 matrix: u vᵀ with |u| = sqrt 5, |v| = sqrt 14.
    let r = try Matrix<Float>([[1, 2, 3], [2, 4, 6]])
    expectClose(try r.singularValues(), [Double(70).squareRoot(), 0], tolerance: 1e-6, "rank one")
  }

  @Test(arguments: [(0, 3), (3, 0), (0, 0)])
  func emptyMatrix(rows: Int, columns: Int) throws {
    let a = Matrix<Double>(rows: rows, columns: columns)
    let thin = try a.svd()
    #expect(
      thin.u.rows == rows && thin.u.columns == 0 && thin.vt.rows == 0 && thin.vt.columns == columns)
    let full = try a.svd(full: true)
    #expect(
      full.u == .identity(rows) && full.vt == .identity(columns) && full.singularValues.isEmpty)
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
    let (m, n) = (a.rows, a.columns)
    let k = min(m, n)
    let tolerance = precision.tolerance(100)
    let expectedValues = try fixtures.vector("svd.\(shape).s")
    expectClose(try a.singularValues(), expectedValues, tolerance: tolerance, "s alone")

    for full in [false, true] {
      let result = try a.svd(full: full)
      let label = full ? "full" : "thin"
      #expect(result.u.rows == m && result.u.columns == (full ? m : k), "\(label) U shape")
      #expect(result.vt.rows == (full ? n : k) && result.vt.columns == n, "\(label) Vᵀ shape")
      expectClose(result.singularValues, expectedValues, tolerance: tolerance, "\(label) s")
      #expect(result.singularValues == result.singularValues.sorted(by: >))

      // Uᵀ U = I, V Vᵀ = I, U S Vᵀ = A.
      #expect(distanceFromIdentity(try result.u.matmul(result.u, transposeSelf: true)) <= tolerance)
      #expect(
        distanceFromIdentity(try result.vt.matmul(result.vt, transposeOther: true)) <= tolerance)
      var us = Matrix<Scalar>(rows: m, columns: k)
      for i in 0..<m {
        for j in 0..<k { us[i, j] = result.u[i, j] * result.singularValues[j] }
      }
      var leadingVt = Matrix<Scalar>(rows: k, columns: n)
      for i in 0..<k {
        for j in 0..<n { leadingVt[i, j] = result.vt[i, j] }
      }
      expectClose(try us.matmul(leadingVt), a.asDouble, tolerance: tolerance, "\(label) U S Vᵀ")

      if !full, let expectedU: Matrix<Double> = try? fixtures.matrix("svd.\(shape).u") {
        let expectedVt: Matrix<Double> = try fixtures.matrix("svd.\(shape).vt")
        // Each singular pair is defined up to a common sign: align with numpy's U.
        var u = result.u
        var vt = result.vt
        for j in 0..<k {
          let dot = (0..<m).reduce(0.0) { $0 + Double(u[$1, j]) * expectedU[$1, j] }
          if dot < 0 {
            u.scaleColumn(j, by: -1)
            vt.scaleRow(j, by: -1)
          }
        }
        expectClose(u, expectedU, tolerance: tolerance, "U")
        expectClose(vt, expectedVt, tolerance: tolerance, "Vᵀ")
      }
    }
  }
}
