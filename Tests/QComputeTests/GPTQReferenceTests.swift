import Foundation
import Testing

@testable import QCompute

/// GPTQ against the numpy transcription in Fixtures/make_calibrated_fixtures.py.
@Suite("GPTQ against the numpy reference")
struct GPTQReferenceTests {
  @Test func fixturesLoad() throws {
    let fixtures = try CalibratedFixtures.loaded.get()
    #expect(fixtures.manifest.cases.count >= 10)
  }

  @Test(arguments: CalibratedFixtures.cases)
  func matchesReference(_ reference: CalibratedFixtures.Case) throws {
    let fixtures = try CalibratedFixtures.loaded.get()
    let weights = fixtures.values(reference.weights, as: Float.self)
    let hessian = try fixtures.hessian(reference.hessian)
    let result = try GPTQ.quantize(
      weights, rows: reference.rows, columns: reference.columns, hessian: hessian,
      grid: reference.calibratedGrid, options: .init(actOrder: reference.act_order))
    let quantized = result.quantized

    let expectedCodes = fixtures.values(reference.codes, as: UInt8.self)
    let mismatches = zip(quantized.codes, expectedCodes).filter { $0 != $1 }.count
    #expect(mismatches == 0, "\(mismatches) of \(expectedCodes.count) codes differ")
    expectClose(quantized.scales, fixtures.values(reference.scales, as: Float.self))
    expectClose(quantized.offsets, fixtures.values(reference.offsets, as: Float.self))
    let expectedLosses = fixtures.values(reference.row_losses, as: Double.self)
    for (actual, expected) in zip(result.rowLosses, expectedLosses) {
      #expect(actual.isApproximatelyEqual(to: expected, relativeTolerance: 1e-9))
    }

    if let firstScales = reference.first_scales, let scaleCodes = reference.scale_codes,
      let chunkScales = reference.chunk_scales, let chunkZeros = reference.chunk_zeros
    {
      let second = try #require(quantized.secondLevel)
      #expect(second.codes == fixtures.values(scaleCodes, as: UInt8.self))
      expectClose(second.unquantizedScales, fixtures.values(firstScales, as: Float.self))
      expectClose(second.chunkScales, fixtures.values(chunkScales, as: Float.self))
      expectClose(second.chunkZeros, fixtures.values(chunkZeros, as: Float.self))
    }
  }

  func expectClose(
    _ actual: [Float], _ expected: [Float], sourceLocation: SourceLocation = #_sourceLocation
  ) {
    #expect(actual.count == expected.count, sourceLocation: sourceLocation)
    let worst = zip(actual, expected).map { abs($0 - $1) / max(abs($1), 1e-6) }.max() ?? 0
    #expect(worst <= 1e-6, "largest relative difference \(worst)", sourceLocation: sourceLocation)
  }
}

extension Double {
  fileprivate func isApproximatelyEqual(to other: Double, relativeTolerance: Double) -> Bool {
    abs(self - other) <= relativeTolerance * max(abs(self), abs(other))
  }
}
