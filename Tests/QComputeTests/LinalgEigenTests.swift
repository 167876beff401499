import QCompute
import Testing

@Suite struct LinalgEigenTests {
  @Test func knownTwoByTwo() throws {
    // [[2, 1], [1, 2]] has eigenvalues 1 and 3 with eigenvectors (1, -1) and (1, 1) / sqrt 2.
    let result = try Matrix<Double>([[2, 1], [1, 2]]).symmetricEigen()
    expectClose(result.eigenvalues, [1, 3], tolerance: 1e-15, "w")
    let h = 0.5.squareRoot()
    expectClose(result.eigenvectors.elements.map(abs), [h, h, h, h], tolerance: 1e-15, "|V|")
    #expect(result.eigenvectors[0, 0] * result.eigenvectors[1, 0] < 0, "first vector is (1, -1)")
    #expect(result.eigenvectors[0, 1] * result.eigenvectors[1, 1] > 0, "second vector is (1, 1)")
  }

  @Test func knownThreeByThree() throws {
    // The second-difference matrix of order 3: eigenvalues 2 - sqrt 2, 2, 2 + sqrt 2.
    let a = try Matrix<Float>([[2, -1, 0], [-1, 2, -1], [0, -1, 2]])
    let r = 2.0.squareRoot()
    expectClose(try a.symmetricEigenvalues(), [2 - r, 2, 2 + r], tolerance: 1e-6, "w")
  }

  @Test func notSquareIsRejected() {
    #expect(throws: ComputeError.self) { try Matrix<Double>(rows: 2, columns: 3).symmetricEigen() }
  }

  @Test func emptyMatrix() throws {
    let result = try Matrix<Double>(rows: 0, columns: 0).symmetricEigen()
    #expect(result.eigenvalues.isEmpty && result.eigenvectors.isEmpty)
  }

  @Test(arguments: Precision.allCases, ["spd1", "spd7", "spd65", "sym7"])
  func matchesNumpy(precision: Precision, name: String) throws {
    switch precision {
    case .float: try check(Float.self, name, precision)
    case .double: try check(Double.self, name, precision)
    }
  }

  private func check<Scalar: LinalgScalar>(_: Scalar.Type, _ name: String, _ precision: Precision)
    throws
  {
    let fixtures = try LinalgFixtures.shared()
    let input = name.hasPrefix("spd") ? "spd.\(name.dropFirst(3))" : "sym.\(name.dropFirst(3))"
    let a: Matrix<Scalar> = try fixtures.matrix(input)
    let tolerance = precision.tolerance(100)
    let result = try a.symmetricEigen()
    let expectedValues = try fixtures.vector("eigh.\(name).w")
    expectClose(result.eigenvalues, expectedValues, tolerance: tolerance, "w")
    // Without vectors LAPACK takes another path, so the values agree only to rounding.
    expectClose(try a.symmetricEigenvalues(), expectedValues, tolerance: tolerance, "w alone")

    // Vᵀ V = I and V diag(w) Vᵀ = A, whatever the signs.
    let v = result.eigenvectors
    #expect(distanceFromIdentity(try v.matmul(v, transposeSelf: true)) <= tolerance, "VᵀV")
    var scaled = v
    for j in 0..<v.columns { scaled.scaleColumn(j, by: result.eigenvalues[j]) }
    expectClose(
      try scaled.matmul(v, transposeOther: true), a.asDouble, tolerance: tolerance, "V W Vᵀ")

    if let expectedVectors: Matrix<Double> = try? fixtures.matrix("eigh.\(name).v") {
      // Each eigenvector is defined up to sign: align ours with numpy's before comparing.
      var aligned = v
      for j in 0..<v.columns {
        let dot = (0..<v.rows).reduce(0.0) { $0 + Double(v[$1, j]) * expectedVectors[$1, j] }
        if dot < 0 { aligned.scaleColumn(j, by: -1) }
      }
      expectClose(aligned, expectedVectors, tolerance: tolerance, "V")
    }
  }
}
