import QCompute
import Testing

@Suite struct LinalgQRTests {
  @Test func knownFactorisation() throws {
    // [[3, 1], [4, 2]]: the first column has norm 5, so |R| = [[5, 11/5], [0, 2/5]].
    let qr = try Matrix<Double>([[3, 1], [4, 2]]).thinQR()
    expectClose(qr.r.elements.map(abs), [5, 2.2, 0, 0.4], tolerance: 1e-15, "|R|")
    expectClose(qr.q.elements.map(abs), [0.6, 0.8, 0.8, 0.6], tolerance: 1e-15, "|Q|")
  }

  @Test(arguments: [(0, 3), (3, 0)])
  func emptyMatrix(rows: Int, columns: Int) throws {
    let qr = try Matrix<Float>(rows: rows, columns: columns).thinQR()
    #expect(qr.q.rows == rows && qr.q.columns == 0 && qr.r.rows == 0 && qr.r.columns == columns)
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
    let tolerance = precision.tolerance(100)
    for transposed in [false, true] {
      let stored: Matrix<Scalar> = try fixtures.matrix("g.\(shape)")
      let a = transposed ? stored.transposed() : stored
      let label = transposed ? "\(shape)ᵀ" : shape
      let (m, n) = (a.rows, a.columns)
      let k = min(m, n)
      let qr = try a.thinQR()
      #expect(qr.q.rows == m && qr.q.columns == k && qr.r.rows == k && qr.r.columns == n)
      #expect(
        distanceFromIdentity(try qr.q.matmul(qr.q, transposeSelf: true)) <= tolerance,
        "\(label) QᵀQ")
      expectClose(try qr.q.matmul(qr.r), a.asDouble, tolerance: tolerance, "\(label) QR")
      for i in 0..<k {
        for j in 0..<i { #expect(qr.r[i, j] == 0, "\(label) R is upper triangular") }
      }
      if transposed { continue }
      let diagonal = (0..<k).map { abs(Double(qr.r[$0, $0])) }
      expectClose(
        diagonal, try fixtures.vector("qr.\(shape).absdiag"), tolerance: tolerance, "|diag R|")
      if let expectedR: Matrix<Double> = try? fixtures.matrix("qr.\(shape).r") {
        let expectedQ: Matrix<Double> = try fixtures.matrix("qr.\(shape).q")
        // Q's columns and R's rows are defined up to a common sign: align with numpy's R.
        var q = qr.q
        var r = qr.r
        for i in 0..<k where (Double(r[i, i]) < 0) != (expectedR[i, i] < 0) {
          q.scaleColumn(i, by: -1)
          r.scaleRow(i, by: -1)
        }
        expectClose(q, expectedQ, tolerance: tolerance, "Q")
        expectClose(r, expectedR, tolerance: tolerance, "R")
      }
    }
  }
}
