import Foundation
import Testing

@testable import QCompute

@Suite("Gram-aware clip search")
struct CalibratedClipTests {
  struct Shape: Sendable, CustomTestStringConvertible {
    var rows: Int
    var columns: Int
    var bits: Int
    var groupSize: GroupSize
    var testDescription: String { "w\(bits) \(groupSize) \(rows)x\(columns)" }
  }

  static let shapes: [Shape] = [
    Shape(rows: 1, columns: 16, bits: 2, groupSize: 16),
    Shape(rows: 7, columns: 64, bits: 2, groupSize: 16),
    Shape(rows: 8, columns: 64, bits: 3, groupSize: 32),
    Shape(rows: 3, columns: 65, bits: 4, groupSize: .perChannel),
    Shape(rows: 2, columns: 128, bits: 4, groupSize: 128),
  ]

  /// Brute force: each candidate's error as mean_t (x_t · Δw)² straight from the activations.
  @Test(arguments: shapes)
  func matchesBruteForceOnActivations(_ shape: Shape) throws {
    var generator = SeededGenerator(seed: UInt64(shape.columns * 10 + shape.rows))
    let tokens = 40
    let activations = correlatedActivations(tokens: tokens, columns: shape.columns, using: &generator)
    var hessian = try activations.gram()
    for i in 0..<shape.columns {
      for j in 0..<shape.columns { hessian[i, j] /= Double(tokens) }
    }
    let weights = randomWeights(rows: shape.rows, columns: shape.columns, using: &generator)
    let result = try GramClipSearch.quantize(
      weights, rows: shape.rows, columns: shape.columns, hessian: hessian, bits: shape.bits,
      groupSize: shape.groupSize)

    let length = shape.groupSize.length(columns: shape.columns)
    let groups = shape.columns / length
    let levels = Float((1 << shape.bits) - 1)
    for row in 0..<shape.rows {
      for group in 0..<groups {
        let values = Array(weights[(row * shape.columns + group * length)...].prefix(length))
        let low = values.min() ?? 0
        let high = values.max() ?? 0
        var best = (error: Double.infinity, bottom: low, top: high)
        for i in 0..<10 {
          for j in 0..<10 {
            let top = high * Float(1 - Double(i) / 20)
            let bottom = low * Float(1 - Double(j) / 20)
            let clampedLow = min(max(low, bottom), top)
            let clampedHigh = min(max(high, bottom), top)
            let scale = max(clampedHigh - clampedLow, 1e-5) / levels
            let zero = min(max(-(clampedLow / scale).rounded(.toNearestOrEven), 0), levels)
            let delta = values.map { value -> Double in
              let clamped = min(max(value, bottom), top)
              let code = min(max((clamped / scale).rounded(.toNearestOrEven) + zero, 0), levels)
              return Double((code - zero) * scale - value)
            }
            var error = 0.0
            for t in 0..<tokens {
              var dot = 0.0
              for k in 0..<length { dot += activations[t, group * length + k] * delta[k] }
              error += dot * dot
            }
            error /= Double(tokens)
            if error < best.error * (1 - 1e-12) { best = (error, bottom, top) }
          }
        }
        let index = row * groups + group
        #expect(result.lowerBounds[index] == best.bottom, "row \(row) group \(group)")
        #expect(result.upperBounds[index] == best.top, "row \(row) group \(group)")
      }
    }
    // The clamp and the codes follow from the bounds.
    for index in 0..<weights.count {
      let group = (index / shape.columns) * groups + (index % shape.columns) / length
      let clamped = min(max(weights[index], result.lowerBounds[group]), result.upperBounds[group])
      #expect(result.clippedWeights[index] == clamped)
    }
  }

  /// With H = I the error is the weight error, which is what `ClipSearchQuantizer` minimises.
  @Test(arguments: shapes)
  func identityHessianIsTheWeightClipSearch(_ shape: Shape) throws {
    var generator = SeededGenerator(seed: UInt64(shape.columns + shape.rows))
    let weights = randomWeights(rows: shape.rows, columns: shape.columns, using: &generator)
    let result = try GramClipSearch.quantize(
      weights, rows: shape.rows, columns: shape.columns,
      hessian: Matrix<Float>.identity(shape.columns), bits: shape.bits, groupSize: shape.groupSize)
    let plain = try weights.withUnsafeBufferPointer {
      try ClipSearchQuantizer.quantize(
        $0, rows: shape.rows, columns: shape.columns, bits: shape.bits, groupSize: shape.groupSize)
    }
    #expect(result.quantized == plain)
  }

  @Test func rejectsAMismatchedHessian() {
    #expect(throws: CalibrationError.hessianShapeMismatch(
      operation: "GramClipSearch", rows: 16, columns: 16, weightColumns: 32)) {
      _ = try GramClipSearch.quantize(
        [Float](repeating: 1, count: 64), rows: 2, columns: 32,
        hessian: Matrix<Double>.identity(16), bits: 2, groupSize: 16)
    }
  }
}
