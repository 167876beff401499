import Foundation
import Testing

@testable import QCompute

/// AdaRound's soft weight, its gradients and its hard codes on a fixed grid, against the formulas
/// and against the grid's own round-to-nearest codes.
@Suite struct AdaRoundLayerTests {
  enum Kind { case clip, affine }

  /// A grid from the array form of the clip-search or affine quantizer.
  static func grid(
    _ kind: Kind, _ weights: [Float], rows: Int, columns: Int, bits: Int, groupSize: GroupSize
  ) throws -> QuantizedMatrix {
    try weights.withUnsafeBufferPointer { buffer in
      switch kind {
      case .clip: try ClipSearchQuantizer.quantize(buffer, rows: rows, columns: columns, bits: bits, groupSize: groupSize)
      case .affine: try AffineQuantizer.quantize(buffer, rows: rows, columns: columns, bits: bits, groupSize: groupSize)
      }
    }
  }

  struct Shape: Sendable, CustomTestStringConvertible {
    var rows: Int
    var columns: Int
    var groupSize: GroupSize
    var testDescription: String { "\(rows)x\(columns) \(groupSize)" }
  }

  static let shapes: [Shape] = [
    Shape(rows: 1, columns: 1, groupSize: .perChannel),
    Shape(rows: 3, columns: 7, groupSize: .perChannel),
    Shape(rows: 2, columns: 8, groupSize: .perChannel),
    Shape(rows: 2, columns: 63, groupSize: .perChannel),
    Shape(rows: 3, columns: 64, groupSize: .elements(32)),
    Shape(rows: 2, columns: 65, groupSize: .perChannel),
    Shape(rows: 2, columns: 128, groupSize: .elements(64)),
  ]

  static func weights(_ count: Int, seed: UInt64) -> [Float] {
    var state = seed
    return (0..<count).map { _ in
      state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
      return Float(Int64(bitPattern: state >> 11) % 2_000_001) / 1_000_000 - 1
    }
  }

  /// h(V) follows its definition, and the initial V puts h at the given fraction.
  @Test func rectifiedSigmoidAndItsInverse() {
    for v: Float in [-8, -2.5, -1, 0, 0.3, 2.5, 8] {
      let sigma = 1 / (1 + exp(-Double(v)))
      let expected = min(max(sigma * 1.2 - 0.1, 0), 1)
      #expect(abs(Double(AdaRoundLayer.rectifiedSigmoid(v)) - expected) < 1e-6)
    }
    #expect(AdaRoundLayer.rectifiedSigmoid(-8) == 0)
    #expect(AdaRoundLayer.rectifiedSigmoid(8) == 1)
    for fraction: Float in [0, 0.01, 0.25, 0.5, 0.75, 0.99] {
      #expect(abs(AdaRoundLayer.rectifiedSigmoid(AdaRoundLayer.initialLogit(fraction: fraction)) - fraction) < 1e-5)
    }
  }

  /// At the start the soft weight is the weight itself where it lies inside the grid's range, and
  /// the hard codes are the grid's round-to-nearest codes.
  @Test(arguments: shapes)
  func startsAtTheWeightsAndNearestCodes(shape: Shape) throws {
    let w = Self.weights(shape.rows * shape.columns, seed: UInt64(shape.columns))
    for bits in [2, 3, 4] {
      let grid = try Self.grid(.clip, w, rows: shape.rows, columns: shape.columns, bits: bits, groupSize: shape.groupSize)
      let layer = try AdaRoundLayer(weights: w, grid: grid)
      let soft = layer.softWeights()
      let restored = grid.dequantize()
      let length = grid.groupLength
      for index in w.indices {
        let group = (index / shape.columns) * grid.groupsPerRow + (index % shape.columns) / length
        let scale = grid.scales[group]
        let zero = grid.offsets[group]
        let low = -scale * zero
        let high = scale * (Float((1 << bits) - 1) - zero)
        let expected = min(max(w[index], low), high)
        #expect(abs(soft[index] - expected) <= 1e-5 * max(1, abs(expected)), "weight \(index)")
      }
      #expect(layer.hardCodes() == grid.codes)
      #expect(layer.quantized().dequantize() == restored)
    }
  }

  /// With every h(V) at 0 or 1 the soft weights are the hard weights, bit for bit.
  @Test func saturatedRoundingIsExactlyTheHardWeights() throws {
    let w = Self.weights(3 * 64, seed: 5)
    let grid = try Self.grid(.clip, w, rows: 3, columns: 64, bits: 2, groupSize: .elements(32))
    var layer = try AdaRoundLayer(weights: w, grid: grid)
    layer.logits = layer.logits.indices.map { $0 % 3 == 0 ? 6 : -6 }
    #expect(layer.roundingFractions.allSatisfy { $0 == 0 || $0 == 1 })
    #expect(layer.softWeights() == layer.quantized().dequantize())
    #expect(layer.quantized().codes != grid.codes)
    #expect(layer.regulariser(beta: 2).value == 0)
  }

  /// A bias grid (affine, w = s q + b) works the same way.
  @Test func biasGridStartsAtTheWeights() throws {
    let w = Self.weights(2 * 64, seed: 9)
    let grid = try Self.grid(.affine, w, rows: 2, columns: 64, bits: 3, groupSize: .elements(64))
    let layer = try AdaRoundLayer(weights: w, grid: grid)
    let soft = layer.softWeights()
    for index in w.indices {
      let group = index / 64
      // MLX's step may be negative: the range runs from the bias either way.
      let ends = [grid.offsets[group], grid.scales[group] * 7 + grid.offsets[group]]
      let (low, high) = (ends.min() ?? 0, ends.max() ?? 0)
      #expect(abs(soft[index] - min(max(w[index], low), high)) < 1e-5, "weight \(index)")
    }
    #expect(layer.hardCodes() == grid.codes)
    #expect(grid.scales.contains { $0 < 0 })
  }

  /// dL/dV of `L = Σ r w̃(V)` and of the regulariser, against central differences in V.
  @Test(arguments: [Float(20), 8, 2])
  func gradientsMatchFiniteDifferences(beta: Float) throws {
    let w = Self.weights(2 * 32, seed: 11)
    let grid = try Self.grid(.clip, w, rows: 2, columns: 32, bits: 3, groupSize: .elements(32))
    var layer = try AdaRoundLayer(weights: w, grid: grid)
    // Spread V over the sigmoid's unsaturated range.
    layer.logits = layer.logits.indices.map { Float($0 % 9) * 0.45 - 1.8 }
    let r = Self.weights(w.count, seed: 12)
    let analytic = layer.logitGradient(weightGradient: r)
    let regulariser = layer.regulariser(beta: beta).gradient
    let step: Float = 1e-2
    for index in stride(from: 0, to: w.count, by: 5) {
      var plus = layer
      plus.logits[index] += step
      var minus = layer
      minus.logits[index] -= step
      func objective(_ l: AdaRoundLayer) -> Double {
        zip(r, l.softWeights()).reduce(0) { $0 + Double($1.0) * Double($1.1) }
      }
      let numeric = (objective(plus) - objective(minus)) / Double(2 * step)
      #expect(abs(Double(analytic[index]) - numeric) < 2e-3 * max(1, abs(numeric)), "index \(index)")
      let numericRegulariser =
        (plus.regulariser(beta: beta).value - minus.regulariser(beta: beta).value) / Double(2 * step)
      #expect(
        abs(Double(regulariser[index]) - numericRegulariser) < 1e-2 * max(1, abs(numericRegulariser)),
        "index \(index), beta \(beta)")
    }
    // Saturated h passes no gradient.
    layer.logits = [Float](repeating: 9, count: w.count)
    #expect(layer.logitGradient(weightGradient: r).allSatisfy { $0 == 0 })
  }

  /// The fused step gradient is the sum of the separate ones.
  @Test func combinedGradientAddsTheParts() throws {
    let w = Self.weights(2 * 64, seed: 13)
    let grid = try Self.grid(.clip, w, rows: 2, columns: 64, bits: 2, groupSize: .elements(32))
    var layer = try AdaRoundLayer(weights: w, grid: grid)
    layer.logits = layer.logits.indices.map { Float($0 % 11) * 0.6 - 3 }
    let r = Self.weights(w.count, seed: 14)
    let data = layer.logitGradient(weightGradient: r)
    let (regularised, value) = layer.combinedGradient(weightGradient: r, scale: 3, regularisation: 0.5, beta: 4)
    let (plain, none) = layer.combinedGradient(weightGradient: r, scale: 3, regularisation: 0.5, beta: nil)
    let regulariser = layer.regulariser(beta: 4)
    #expect(none == 0)
    #expect(abs(value - regulariser.value) < 1e-4 * max(1, regulariser.value))
    for index in w.indices {
      #expect(abs(plain[index] - 3 * data[index]) <= 1e-5 * max(1, abs(plain[index])))
      let expected = 3 * data[index] + 0.5 * regulariser.gradient[index]
      #expect(abs(regularised[index] - expected) <= 1e-4 * max(1, abs(expected)), "index \(index)")
    }
  }

  @Test func rejectsAMismatchedGrid() throws {
    let grid = try Self.grid(.clip, Self.weights(8, seed: 1), rows: 1, columns: 8, bits: 2, groupSize: .perChannel)
    #expect(throws: CalibrationError.self) { try AdaRoundLayer(weights: [1, 2], grid: grid) }
  }
}
