import Testing

@testable import QCompute

/// `firstDequantized(beyond:)` against a scan of `dequantize()`, on grids whose values cross
/// the limit in a few groups only, so the shortcut over whole groups is taken and left.
@Suite struct FirstDequantizedTests {
  /// The first value beyond `limit` in row-major order, by brute force.
  private func bruteForce(_ matrix: QuantizedMatrix, limit: Float) -> (index: [Int], value: Float)? {
    let values = matrix.dequantize()
    guard let index = values.indices.first(where: { !(abs(values[$0]) <= limit) }) else { return nil }
    return ([index / matrix.columns, index % matrix.columns], values[index])
  }

  private func matrix(method: QuantizedMatrix.Method, bits: Int, rows: Int, columns: Int, seed: UInt64) -> QuantizedMatrix {
    var state = seed | 1
    func next() -> UInt64 {
      state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
      return state >> 33
    }
    let groups = rows * columns / 16
    let top = UInt64((1 << bits) - 1)
    return QuantizedMatrix(
      method: method, bits: bits, groupSize: .elements(16), rows: rows, columns: columns,
      codes: (0..<(rows * columns)).map { _ in UInt8(next() % (top + 1)) },
      scales: (0..<groups).map { _ in Float(next() % 1000) / 10 - 20 },
      offsets: (0..<groups).map { _ in Float(next() % 1000) - 500 },
      secondLevel: nil)
  }

  @Test(arguments: [QuantizedMatrix.Method.affine, .clipSearch], [2, 4, 8])
  func matchesAScanOfTheDequantizedValues(method: QuantizedMatrix.Method, bits: Int) {
    for (rows, columns) in [(1, 16), (3, 48), (7, 64)] {
      let grid = matrix(method: method, bits: bits, rows: rows, columns: columns, seed: UInt64(rows * 131 + bits))
      let values = grid.dequantize().map(abs).sorted()
      // Limits below, among and above the values: no value, some values and every value beyond.
      for limit in [Float(0), values[values.count / 2], values[values.count * 9 / 10], values.last! + 1] {
        let found = grid.firstDequantized(beyond: limit)
        let expected = bruteForce(grid, limit: limit)
        #expect(found?.index == expected?.index, "\(rows)x\(columns), limit \(limit)")
        #expect(found?.value == expected?.value)
      }
    }
  }

  @Test func aNonFiniteScaleIsFound() {
    var grid = matrix(method: .affine, bits: 4, rows: 2, columns: 32, seed: 5)
    grid.scales[3] = .nan
    #expect(grid.firstDequantized(beyond: .greatestFiniteMagnitude)?.index == [1, 16])
  }
}
