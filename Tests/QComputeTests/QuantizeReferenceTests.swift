import Testing

@testable import QCompute

struct ReferenceCase: Decodable, CustomTestStringConvertible, Sendable {
  let name: String
  let method: String
  let rows: Int
  let columns: Int
  let bits: Int
  let groupSize: Int
  let weights: [Int]
  let codes: [Int]
  let scales: [Int]
  let zeros: [Int]
  var testDescription: String { name }
}

private struct ReferenceManifest: Decodable {
  let cases: [ReferenceCase]
}

private func referenceCases() -> [ReferenceCase] {
  (try? QuantFixtures.manifest("reference.json", as: ReferenceManifest.self).cases) ?? []
}

private func close(_ a: [Float], _ b: [Float], relative: Float) -> Bool {
  a.count == b.count
    && zip(a, b).allSatisfy { abs($0 - $1) <= relative * max(abs($0), abs($1), 1e-6) }
}

/// Clip search and HQQ against numpy ports of BitDistiller's auto_2clip and HQQ's
/// optimize_weights_proximal_legacy (Fixtures/make_quant_fixtures.py).
@Suite("Clip search and HQQ against numpy references")
struct QuantizeReferenceTests {
  @Test func fixturesArePresent() {
    #expect(referenceCases().count == 18)
  }

  @Test(arguments: referenceCases())
  func matchesReference(_ fixture: ReferenceCase) throws {
    let data = try QuantFixtures(blobNamed: "reference.bin")
    let weights = data.values(fixture.weights, as: Float.self)
    var reference = HQQQuantizer.Options()
    reference.keepsBetterRoundToNearest = false
    let matrix = try weights.withUnsafeBufferPointer { buffer in
      fixture.method == "clip"
        ? try ClipSearchQuantizer.quantize(
          buffer, rows: fixture.rows, columns: fixture.columns, bits: fixture.bits,
          groupSize: .elements(fixture.groupSize))
        : try HQQQuantizer.quantize(
          buffer, rows: fixture.rows, columns: fixture.columns, bits: fixture.bits,
          groupSize: .elements(fixture.groupSize), options: reference)
    }
    #expect(matrix.codes == data.bytes(fixture.codes))
    if fixture.method == "clip" {
      #expect(matrix.scales == data.values(fixture.scales, as: Float.self))
      #expect(matrix.offsets == data.values(fixture.zeros, as: Float.self))
    } else {
      // The zero is a mean; the summation order differs from numpy's in the last bits.
      #expect(close(matrix.scales, data.values(fixture.scales, as: Float.self), relative: 1e-6))
      #expect(close(matrix.offsets, data.values(fixture.zeros, as: Float.self), relative: 1e-5))
    }
  }

  @Test(arguments: [2, 3, 4])
  func clipSearchNeverLosesToPlainMinMax(bits: Int) throws {
    // The unshrunk candidate is in the grid, so the chosen error can only be lower or equal.
    let weights: [Float] = (0..<256).map { (index: Int) -> Float in
      let base = Float((index * 37) % 101) / 50 - 1
      return index % 64 == 3 ? base + 4 : base
    }
    let clipped = try weights.withUnsafeBufferPointer {
      try ClipSearchQuantizer.quantize($0, rows: 4, columns: 64, bits: bits, groupSize: 32)
    }.dequantize()
    let levels = Float((1 << bits) - 1)
    for group in 0..<8 {
      let slice = weights[(group * 32)..<((group + 1) * 32)]
      let low: Float = slice.min() ?? 0
      let high: Float = slice.max() ?? 0
      let scale = max(high - low, 1e-5) / levels
      let zero = min(max(-(low / scale).rounded(.toNearestOrEven), 0), levels)
      var plainError: Double = 0
      var clipError: Double = 0
      for index in slice.indices {
        let code = min(max((weights[index] / scale).rounded(.toNearestOrEven) + zero, 0), levels)
        let plainDifference = (code - zero) * scale - weights[index]
        let clipDifference = clipped[index] - weights[index]
        plainError += Double(plainDifference * plainDifference)
        clipError += Double(clipDifference * clipDifference)
      }
      #expect(clipError <= plainError * (1 + 1e-6), "group \(group)")
    }
  }
}

@Suite("Symmetric RTN")
struct QuantizeSymmetricTests {
  @Test(arguments: [1, 7, 8, 31, 32, 33, 63, 64, 65])
  func signedGridFollowsFormula(columns: Int) throws {
    let weights = (0..<(2 * columns)).map { Float($0 % 13) * 0.11 - 0.6 }
    let matrix = try weights.withUnsafeBufferPointer {
      try SymmetricQuantizer.quantize($0, rows: 2, columns: columns, bits: 4, groupSize: .perChannel)
    }
    for row in 0..<2 {
      let slice = weights[(row * columns)..<((row + 1) * columns)]
      let absMax = slice.map(abs).max() ?? 0
      // A constant nonzero group (every row of one column) is stored as step |value|, code +-1.
      let isConstant = absMax > 0 && Set(slice).count == 1
      let scale = isConstant ? absMax : absMax / 7
      #expect(matrix.scales[row] == scale)
      #expect(matrix.offsets[row] == 8)
      for index in slice.indices {
        let signed =
          isConstant
          ? (weights[index] < 0 ? -1 : 1)
          : scale == 0 ? 0 : min(max((weights[index] / scale).rounded(.toNearestOrEven), -8), 7)
        #expect(Float(matrix.codes[index]) == signed + 8)
      }
    }
  }

  @Test func embeddingGridMatchesSpeedQPolicy() throws {
    // absmax 1.5 -> s = 2 * 1.5 / 15 = 0.2, z = 7: +-1.5 -> 7 +- 7.5 -> 14 and 0 (half to even),
    // 0.1 -> rint(7.5) = 8, 0.3 -> rint(8.5) = 8, -0.1 -> rint(6.5) = 6.
    var weights = [Float](repeating: 0, count: 32)
    weights[0] = 1.5
    weights[1] = -1.5
    weights[2] = 0.1
    weights[3] = 0.3
    weights[4] = -0.1
    let matrix = try weights.withUnsafeBufferPointer {
      try SymmetricQuantizer.quantize($0, rows: 1, columns: 32, bits: 4, groupSize: 32, variant: .embedding)
    }
    #expect(matrix.method == .symmetricEmbedding)
    #expect(abs(matrix.scales[0] - 0.2) < 1e-7)
    #expect(matrix.offsets == [7])
    #expect(Array(matrix.codes[0..<6]) == [14, 0, 8, 8, 6, 7])
  }
}
