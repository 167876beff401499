import Testing

@testable import QCompute

struct MLXCase: Decodable, CustomTestStringConvertible, Sendable {
  let name: String
  let rows: Int
  let columns: Int
  let bits: Int
  let groupSize: Int
  let dtype: String
  let weights: [Int]
  let words: [Int]
  let scales: [Int]
  let biases: [Int]
  let dequantized: [Int]
  var testDescription: String { name }
}

private struct MLXManifest: Decodable {
  let cases: [MLXCase]
}

private func mlxCases() -> [MLXCase] {
  (try? QuantFixtures.manifest("mlx.json", as: MLXManifest.self).cases) ?? []
}

@Suite("Affine RTN against mlx.core.quantize")
struct QuantizeAffineTests {
  @Test func fixturesArePresent() {
    #expect(mlxCases().count >= 30)
  }

  @Test(arguments: mlxCases())
  func matchesMLXBitForBit(_ fixture: MLXCase) throws {
    let data = try QuantFixtures(blobNamed: "mlx.bin")
    let weights = data.floats(fixture.weights, dtype: fixture.dtype)
    let matrix = try weights.withUnsafeBufferPointer {
      try AffineQuantizer.quantize(
        $0, rows: fixture.rows, columns: fixture.columns, bits: fixture.bits,
        groupSize: .elements(fixture.groupSize))
    }
    #expect(try matrix.packedWords() == data.values(fixture.words, as: UInt32.self))
    let expectedScales = data.floats(fixture.scales, dtype: fixture.dtype)
    let expectedBiases = data.floats(fixture.biases, dtype: fixture.dtype)
    if fixture.dtype == "F16" {
      // MLX computes in f32 and stores scales and biases in the weight dtype.
      #expect(matrix.scales.map { Float(Float16($0)) } == expectedScales)
      #expect(matrix.offsets.map { Float(Float16($0)) } == expectedBiases)
    } else {
      #expect(matrix.scales.map(\.bitPattern) == expectedScales.map(\.bitPattern))
      #expect(matrix.offsets.map(\.bitPattern) == expectedBiases.map(\.bitPattern))
      #expect(matrix.dequantize() == data.floats(fixture.dequantized, dtype: fixture.dtype))
    }
  }

  @Test(arguments: [0, 1, 31, 33, 63, 65])
  func rejectsRowsThatAreNotWholeGroups(columns: Int) throws {
    let weights = [Float](repeating: 0.25, count: 2 * columns)
    if columns == 0 {
      let matrix = try weights.withUnsafeBufferPointer {
        try AffineQuantizer.quantize($0, rows: 2, columns: 0, bits: 4, groupSize: 32)
      }
      #expect(matrix.codes.isEmpty && matrix.scales.isEmpty)
      return
    }
    #expect(throws: QuantizeError.columnsNotDivisible(quantizer: "AffineQuantizer", columns: columns, by: 32)) {
      try weights.withUnsafeBufferPointer {
        try AffineQuantizer.quantize($0, rows: 2, columns: columns, bits: 4, groupSize: 32)
      }
    }
  }

  @Test(arguments: [1, 7, 8, 63, 64, 65])
  func perChannelSnapsTheLargerEdgeExactly(columns: Int) throws {
    // Formula check: the larger-magnitude edge and zero are reproduced exactly.
    let weights = (0..<columns).map { Float($0) * 0.37 - 5.0 }
    let matrix = try weights.withUnsafeBufferPointer {
      try AffineQuantizer.quantize($0, rows: 1, columns: columns, bits: 4, groupSize: .perChannel)
    }
    let restored = matrix.dequantize()
    let edgeIndex = weights.indices.max { abs(weights[$0]) < abs(weights[$1]) } ?? 0
    #expect(restored[edgeIndex] == weights[edgeIndex])
    let step = abs(matrix.scales[0])
    for (original, value) in zip(weights, restored) {
      #expect(abs(original - value) <= step / 2 * 1.0001 + 1e-6)
    }
  }
}
