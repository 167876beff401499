import Foundation
import QCompute
import Testing

@testable import QToolSupport

@Suite struct SpeedQStage2Tests {
  struct Fixture: Decodable {
    var shape: [Int]
    var fp_features: [Float]
    var quantized_features: [Float]
    var linear1_weight: [Float]
    var linear1_bias: [Float]
    var linear2_weight: [Float]
    var linear2_bias: [Float]
    var expected_weight: [Double]
    var expected_bias: [Double]
  }

  /// numpy's lstsq on the same projector and features (Fixtures/speedq/make_projector_fixture.py).
  @Test func refitMatchesNumpyLeastSquares() throws {
    let url = fixturesDirectory.appending(path: "speedq/projector_refit.json")
    let f = try JSONDecoder().decode(Fixture.self, from: try Data(contentsOf: url))
    let (tokens, width, hidden, outputs) = (f.shape[0], f.shape[1], f.shape[2], f.shape[3])
    let refit = try SpeedQStage2.refitProjector(
      fpFeatures: try Matrix(rows: tokens, columns: width, elements: f.fp_features),
      quantizedFeatures: try Matrix(rows: tokens, columns: width, elements: f.quantized_features),
      linear1Weight: try Matrix(rows: hidden, columns: width, elements: f.linear1_weight),
      linear1Bias: f.linear1_bias,
      linear2Weight: try Matrix(rows: outputs, columns: hidden, elements: f.linear2_weight),
      linear2Bias: f.linear2_bias)
    let weight = refit.weight.elements
    #expect(weight.count == f.expected_weight.count)
    for (value, expected) in zip(weight, f.expected_weight) {
      #expect(abs(Double(value) - expected) <= 1e-4 * max(1, abs(expected)))
    }
    for (value, expected) in zip(refit.bias, f.expected_bias) {
      #expect(abs(Double(value) - expected) <= 1e-4 * max(1, abs(expected)))
    }
    // The refit must actually differ from the FP linear_2 here (the features were perturbed).
    let change = zip(weight, f.linear2_weight).map { abs($0 - $1) }.max() ?? 0
    #expect(change > 1e-3)
  }

  /// A random projector refitted on FP and quantized features that are the same, with the
  /// `linear_2` weight and bias it started from.
  static func refitOnIdenticalFeatures(
    tokens: Int, width: Int, hidden: Int, outputs: Int, seed: UInt64, ridge: Double = 0
  ) throws -> (refit: SpeedQStage2.Refit, w2: [Float], b2: [Float]) {
    var generator = SplitMixGenerator(state: seed)
    func random(_ count: Int) -> [Float] { (0..<count).map { _ in generator.nextGaussian() } }
    let features = try Matrix(rows: tokens, columns: width, elements: random(tokens * width))
    let w2 = random(outputs * hidden)
    let b2 = random(outputs)
    let refit = try SpeedQStage2.refitProjector(
      fpFeatures: features, quantizedFeatures: features,
      linear1Weight: try Matrix(rows: hidden, columns: width, elements: random(hidden * width)),
      linear1Bias: random(hidden),
      linear2Weight: try Matrix(rows: outputs, columns: hidden, elements: w2), linear2Bias: b2, ridge: ridge)
    return (refit, w2, b2)
  }

  /// Identical features: the FP linear_2 is the exact solution and comes back.
  @Test(arguments: [(13, 3, 4, 2), (40, 8, 12, 6), (65, 7, 16, 1)])
  func identicalFeaturesRecoverTheProjector(tokens: Int, width: Int, hidden: Int, outputs: Int) throws {
    let (refit, w2, b2) = try Self.refitOnIdenticalFeatures(
      tokens: tokens, width: width, hidden: hidden, outputs: outputs, seed: UInt64(tokens * 31 + width))
    for (value, expected) in zip(refit.weight.elements, w2) { #expect(abs(value - expected) < 1e-3) }
    for (value, expected) in zip(refit.bias, b2) { #expect(abs(value - expected) < 1e-3) }
  }

  /// The ridge pulls toward the FP linear_2: with identical features it comes back even when
  /// the tokens alone cannot determine it (a ridge toward zero would shrink it).
  @Test(arguments: [(5, 3, 8, 2), (13, 4, 4, 3), (40, 8, 12, 6)])
  func ridgeKeepsTheProjector(tokens: Int, width: Int, hidden: Int, outputs: Int) throws {
    let (refit, w2, b2) = try Self.refitOnIdenticalFeatures(
      tokens: tokens, width: width, hidden: hidden, outputs: outputs, seed: UInt64(tokens * 17 + hidden), ridge: 0.5)
    for (value, expected) in zip(refit.weight.elements, w2) { #expect(abs(value - expected) < 1e-4) }
    for (value, expected) in zip(refit.bias, b2) { #expect(abs(value - expected) < 1e-4) }
  }

  @Test func tooFewTokensAreRefused() throws {
    let features = try Matrix<Float>(rows: 3, columns: 2, elements: [1, 2, 3, 4, 5, 6])
    #expect(throws: SpeedQError.self) {
      try SpeedQStage2.refitProjector(
        fpFeatures: features, quantizedFeatures: features, linear1Weight: Matrix(rows: 4, columns: 2),
        linear1Bias: [0, 0, 0, 0], linear2Weight: Matrix(rows: 1, columns: 4), linear2Bias: [0])
    }
  }
}

/// A small deterministic generator for test data (SplitMix64 with Box-Muller).
struct SplitMixGenerator: RandomNumberGenerator {
  var state: UInt64
  mutating func next() -> UInt64 {
    state &+= 0x9E37_79B9_7F4A_7C15
    var z = state
    z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
    z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
    return z ^ (z >> 31)
  }

  mutating func nextGaussian() -> Float {
    let u = Double.random(in: Double.ulpOfOne..<1, using: &self)
    let v = Double.random(in: 0..<1, using: &self)
    return Float((-2 * Foundation.log(u)).squareRoot() * Foundation.cos(2 * Double.pi * v))
  }
}
