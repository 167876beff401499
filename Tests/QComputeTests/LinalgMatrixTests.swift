import QCompute
import Testing

@Suite struct LinalgMatrixTests {
  @Test func rowsAreStoredRowMajor() throws {
    let m = try Matrix<Double>([[1, 2, 3], [4, 5, 6]])
    #expect(m.rows == 2 && m.columns == 3)
    #expect(m.elements == [1, 2, 3, 4, 5, 6])
    #expect(m[1, 0] == 4)
    #expect(m.row(1) == [4, 5, 6])
    #expect(m.column(2) == [3, 6])
  }

  @Test func raggedRowsAreRejected() {
    #expect(throws: ComputeError.self) { try Matrix<Float>([[1, 2], [3]]) }
  }

  @Test func elementCountMustMatchShape() {
    #expect(throws: ComputeError.self) {
      try Matrix<Float>(rows: 2, columns: 2, elements: [1, 2, 3])
    }
  }

  @Test func subscriptWritesOneElement() {
    var m = Matrix<Float>(rows: 2, columns: 2)
    m[0, 1] = 7
    #expect(m.elements == [0, 7, 0, 0])
  }

  @Test func identityHasOnesOnTheDiagonal() {
    #expect(Matrix<Double>.identity(3).elements == [1, 0, 0, 0, 1, 0, 0, 0, 1])
    #expect(Matrix<Double>.identity(0).isEmpty)
  }

  @Test(arguments: [(0, 4), (1, 1), (7, 5), (33, 65), (64, 1)])
  func transposeSwapsIndices(rows: Int, columns: Int) throws {
    let m = try Matrix<Float>(
      rows: rows, columns: columns, elements: (0..<(rows * columns)).map { Float($0) })
    let t = m.transposed()
    #expect(t.rows == columns && t.columns == rows)
    for i in 0..<rows {
      for j in 0..<columns { #expect(t[j, i] == m[i, j]) }
    }
    #expect(t.transposed() == m)
  }

  @Test func frobeniusNormOfKnownMatrix() throws {
    // sqrt(1 + 4 + 4 + 16) = 5
    #expect(try Matrix<Double>([[1, 2], [2, 4]]).frobeniusNorm == 5)
    #expect(Matrix<Float>(rows: 0, columns: 3).frobeniusNorm == 0)
  }

  @Test func frobeniusNormDoesNotOverflow() throws {
    let m = try Matrix<Float>([[3e30, 4e30]])
    #expect(m.frobeniusNorm.isClose(to: 5e30, relativeTolerance: 1e-6))
  }
}

extension BinaryFloatingPoint {
  /// `|self - other| <= relativeTolerance * max(|self|, |other|)`.
  func isClose(to other: Self, relativeTolerance: Self) -> Bool {
    abs(self - other) <= relativeTolerance * Swift.max(abs(self), abs(other))
  }
}
