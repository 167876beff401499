import Foundation
import Testing

@testable import QCompute

struct GGUFCase: Decodable, CustomTestStringConvertible, Sendable {
  let name: String
  let type: String
  let rows: Int
  let columns: Int
  let weights: [Int]?
  let bytes: [Int]
  let dequantized: [Int]
  var testDescription: String { name }
}

private struct GGUFManifest: Decodable {
  let cases: [GGUFCase]
}

private func ggufCases() -> [GGUFCase] {
  (try? QuantFixtures.manifest("gguf.json", as: GGUFManifest.self).cases) ?? []
}

private func kQuantCases() -> [GGUFCase] {
  (try? QuantFixtures.manifest("kquants.json", as: GGUFManifest.self).cases) ?? []
}

private func encoderCases() -> [GGUFCase] {
  (try? QuantFixtures.manifest("encoders.json", as: GGUFManifest.self).cases) ?? []
}

/// Deterministic normal-ish values (sum of uniforms), so failures reproduce.
private func sampleValues(count: Int, seed: UInt64) -> [Float] {
  var state = seed | 1
  func uniform() -> Float {
    state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
    return Float(state >> 40) / Float(1 << 24)
  }
  return (0..<count).map { _ in (uniform() + uniform() + uniform() + uniform() - 2) * 1.7 }
}

@Suite("GGUF blocks against gguf-py")
struct QuantizeGGUFTests {
  @Test func fixturesArePresent() {
    #expect(ggufCases().count == 6)
  }

  @Test(arguments: ggufCases())
  func matchesGGUFPy(_ fixture: GGUFCase) throws {
    let data = try QuantFixtures(blobNamed: "gguf.bin")
    let type = try #require(GGUFBlockType(rawValue: fixture.type))
    let expectedBytes = data.bytes(fixture.bytes)
    if let weightSlice = fixture.weights {
      let weights = data.values(weightSlice, as: Float.self)
      let encoded = try weights.withUnsafeBufferPointer { try GGUFBlocks.encode($0, type: type) }
      #expect(encoded == expectedBytes)
    }
    let decoded = try expectedBytes.withUnsafeBytes { try GGUFBlocks.decode($0, type: type) }
    let expected = data.values(fixture.dequantized, as: Float.self)
    #expect(decoded.map(\.bitPattern) == expected.map(\.bitPattern))
  }

  /// Encoder output against ggml's own quantize_row_q4_K_ref / quantize_row_q2_K_ref.
  @Test(arguments: kQuantCases())
  func kQuantEncodersMatchGGML(_ fixture: GGUFCase) throws {
    let data = try QuantFixtures(blobNamed: "kquants.bin")
    let type = try #require(GGUFBlockType(rawValue: fixture.type))
    let weights = data.values(try #require(fixture.weights), as: Float.self)
    let encoded = try weights.withUnsafeBufferPointer { try GGUFBlocks.encode($0, type: type) }
    #expect(encoded == data.bytes(fixture.bytes))
    let decoded = try encoded.withUnsafeBytes { try GGUFBlocks.decode($0, type: type) }
    #expect(decoded == data.values(fixture.dequantized, as: Float.self))
  }

  @Test func kQuantFixturesArePresent() {
    #expect(kQuantCases().count == 2)
  }

  /// Q4_1, Q5_0, Q5_1, IQ4_NL, Q3_K, Q5_K and Q6_K against ggml's own encoders, one block and
  /// six rows of edge cases (zero, constant, tied, huge and tiny blocks).
  @Test(arguments: encoderCases())
  func blockEncodersMatchGGML(_ fixture: GGUFCase) throws {
    let data = try QuantFixtures(blobNamed: "encoders.bin")
    let type = try #require(GGUFBlockType(rawValue: fixture.type))
    let weights = data.values(try #require(fixture.weights), as: Float.self)
    let encoded = try weights.withUnsafeBufferPointer { try GGUFBlocks.encode($0, type: type) }
    let expected = data.bytes(fixture.bytes)
    #expect(encoded.count == expected.count)
    let firstDifference = encoded.indices.first { $0 < expected.count && encoded[$0] != expected[$0] }
    #expect(
      firstDifference == nil,
      "first differing byte \(firstDifference ?? -1), block \((firstDifference ?? 0) / type.blockBytes)")
    let decoded = try encoded.withUnsafeBytes { try GGUFBlocks.decode($0, type: type) }
    let expectedValues = data.values(fixture.dequantized, as: Float.self)
    #expect(decoded.map(\.bitPattern) == expectedValues.map(\.bitPattern))
  }

  @Test func encoderFixturesCoverEveryNewType() {
    let types = Set(encoderCases().map(\.type))
    #expect(types == ["Q4_1", "Q5_0", "Q5_1", "IQ4_NL", "Q3_K", "Q5_K", "Q6_K"])
  }

  @Test(arguments: GGUFBlockType.allCases)
  func roundTripErrorIsBounded(_ type: GGUFBlockType) throws {
    let values = sampleValues(count: 4 * 256, seed: UInt64(type.ggmlTypeID))
    let encoded = try values.withUnsafeBufferPointer { try GGUFBlocks.encode($0, type: type) }
    #expect(encoded.count == GGUFBlocks.encodedByteCount(elements: values.count, type: type))
    let decoded = try encoded.withUnsafeBytes { try GGUFBlocks.decode($0, type: type) }
    var errorSquares: Float = 0
    var valueSquares: Float = 0
    for (value, restored) in zip(values, decoded) {
      errorSquares += (value - restored) * (value - restored)
      valueSquares += value * value
    }
    let relativeRMS = (errorSquares / valueSquares).squareRoot()
    // Uniform-noise estimates for these grids: ~0.005 (8-bit), ~0.1 (4-bit), ~0.4 (2-bit).
    let bound: Float =
      switch type {
      case .q8_0: 0.01
      case .q6_K: 0.04
      case .q5_0, .q5_1, .q5_K: 0.08
      case .q4_0, .q4_1, .q4_K, .iq4_NL: 0.15
      case .q3_K: 0.3
      case .q2_K: 0.5
      }
    #expect(relativeRMS < bound, "relative RMS \(relativeRMS)")
  }

  @Test func q4KHandWorkedSubBlockScales() throws {
    // Every sub-block is 0, 1/15, ..., 15/15 repeated twice, scaled by (j + 1): min/max gives
    // scale (j + 1) / 15 and min 0, which no rescaled trial beats (the error is already zero).
    // Then max_scale = 8/15, d = f16(8/15 / 63), ls_j = nearest_int(63 / (8/15) * (j+1)/15)
    // = nearest_int(63 (j + 1) / 8), mins all 0.
    var values = [Float](repeating: 0, count: 256)
    for j in 0..<8 {
      for l in 0..<32 { values[32 * j + l] = Float(j + 1) * Float(l % 16) / 15 }
    }
    let block = try values.withUnsafeBufferPointer { try GGUFBlocks.encode($0, type: .q4_K) }
    let expectedScales = (1...8).map { UInt8((63.0 * Double($0) / 8).rounded(.toNearestOrEven)) }
    let decodedScales = block.withUnsafeBytes { raw in
      (0..<8).map { GGUFBlocks.scaleMinK4($0, raw, at: 4).0 }
    }
    #expect(decodedScales == expectedScales)
    #expect(block.withUnsafeBytes { raw in (0..<8).allSatisfy { GGUFBlocks.scaleMinK4($0, raw, at: 4).1 == 0 } })
    let d = Float(Float16(Float(8) / 15 / 63))
    #expect(block.withUnsafeBytes { GGUFBlocks.loadHalf($0, at: 0) } == d)
  }

  @Test func nearestIntRoundsHalfToEven() {
    #expect(GGUFBlocks.nearestInt(2.5) == 2)
    #expect(GGUFBlocks.nearestInt(3.5) == 4)
    #expect(GGUFBlocks.nearestInt(-2.5) == -2)
    #expect(GGUFBlocks.nearestInt(-0.4) == 0)
    #expect(GGUFBlocks.nearestInt(1_000_000.6) == 1_000_001)
  }

  @Test(arguments: [1, 31, 33, 255, 257])
  func rejectsPartialBlocks(count: Int) {
    let values = [Float](repeating: 1, count: count)
    let type: GGUFBlockType = count < 64 ? .q8_0 : .q4_K
    #expect(throws: QuantizeError.self) {
      try values.withUnsafeBufferPointer { try GGUFBlocks.encode($0, type: type) }
    }
    #expect(throws: QuantizeError.truncatedBlocks(type: type.rawValue, bytes: count, blockBytes: type.blockBytes)) {
      try [UInt8](repeating: 0, count: count).withUnsafeBytes { try GGUFBlocks.decode($0, type: type) }
    }
  }
}
