import Foundation
import Testing

@testable import QEngine

/// Every layer's backward against finite differences in Double, at boundary sizes.
@Suite struct TrainingOpsTests {
  typealias Check = GradientCheck
  static let tolerance = 1e-6

  @Test func embeddingScatterAddsRepeatedTokens() throws {
    var generator = SeededGenerator(seed: 1)
    let (vocabulary, width, tokens) = (5, 3, [1, 4, 1, 0])
    let table = Check.random(vocabulary * width, &generator)
    let r = Check.random(tokens.count * width, &generator)
    var analytic = [Double](repeating: 0, count: table.count)
    TrainingOps.embedBackward(r, width: width, tokens: tokens, into: &analytic)
    let numeric = Check.numerical(table) { Check.dot(r, TrainingOps.embed($0, width: width, tokens: tokens)) }
    #expect(Check.relativeError(analytic: analytic, numeric: numeric) < Self.tolerance)
    #expect(analytic[2 * width] == 0)
  }

  @Test(arguments: [(1, 1), (1, 7), (3, 8), (2, 9)])
  func rmsNorm(rows: Int, width: Int) throws {
    var generator = SeededGenerator(seed: UInt64(rows * 100 + width))
    let x = Check.random(rows * width, &generator)
    let weight = Check.random(width, &generator)
    let r = Check.random(rows * width, &generator)
    let (_, inverse) = TrainingOps.rmsNorm(x, rows: rows, weight: weight, epsilon: 1e-5)
    var dWeight: [Double]? = [Double](repeating: 0, count: width)
    let dx = TrainingOps.rmsNormBackward(r, x: x, rows: rows, weight: weight, inverseRMS: inverse, dWeight: &dWeight)
    let numericX = Check.numerical(x) { Check.dot(r, TrainingOps.rmsNorm($0, rows: rows, weight: weight, epsilon: 1e-5).output) }
    let numericW = Check.numerical(weight) { Check.dot(r, TrainingOps.rmsNorm(x, rows: rows, weight: $0, epsilon: 1e-5).output) }
    #expect(Check.relativeError(analytic: dx, numeric: numericX) < Self.tolerance)
    #expect(Check.relativeError(analytic: try #require(dWeight), numeric: numericW) < Self.tolerance)
  }

  @Test(arguments: [(1, 1, 1), (3, 7, 5), (4, 8, 1), (2, 1, 9)])
  func linearWithBias(rows: Int, inputs: Int, outputs: Int) throws {
    var generator = SeededGenerator(seed: UInt64(rows * 1000 + inputs * 10 + outputs))
    let x = Check.random(rows * inputs, &generator)
    let weight = Check.random(outputs * inputs, &generator)
    let bias = Check.random(outputs, &generator)
    let r = Check.random(rows * outputs, &generator)
    func loss(_ x: [Double], _ w: [Double], _ b: [Double]) throws -> Double {
      Check.dot(r, try TrainingOps.linear(x, rows: rows, weight: w, outputs: outputs, inputs: inputs, bias: b))
    }
    let dx = try TrainingOps.linearInputGradient(r, rows: rows, weight: weight, outputs: outputs, inputs: inputs)
    var dW = [Double](repeating: 0, count: weight.count)
    try TrainingOps.accumulateWeightGradient(r, x: x, rows: rows, outputs: outputs, inputs: inputs, into: &dW)
    var dB = [Double](repeating: 0, count: outputs)
    TrainingOps.accumulateBiasGradient(r, rows: rows, outputs: outputs, into: &dB)
    #expect(Check.relativeError(analytic: dx, numeric: try Check.numerical(x) { try loss($0, weight, bias) }) < Self.tolerance)
    #expect(Check.relativeError(analytic: dW, numeric: try Check.numerical(weight) { try loss(x, $0, bias) }) < Self.tolerance)
    #expect(Check.relativeError(analytic: dB, numeric: try Check.numerical(bias) { try loss(x, weight, $0) }) < Self.tolerance)
  }

  @Test(arguments: [1, 3])
  func loraBranch(rank: Int) throws {
    let (rows, inputs, outputs, scale) = (3, 7, 5, 0.75)
    var generator = SeededGenerator(seed: UInt64(rank))
    let x = Check.random(rows * inputs, &generator)
    let weight = Check.random(outputs * inputs, &generator)
    let a = Check.random(rank * inputs, &generator)
    let b = Check.random(outputs * rank, &generator)
    let r = Check.random(rows * outputs, &generator)
    func loss(_ x: [Double], _ a: [Double], _ b: [Double]) throws -> Double {
      var y = try TrainingOps.linear(x, rows: rows, weight: weight, outputs: outputs, inputs: inputs)
      _ = try TrainingOps.loraForward(x, rows: rows, a: a, b: b, rank: rank, outputs: outputs, inputs: inputs, scale: scale, into: &y)
      return Check.dot(r, y)
    }
    var y = try TrainingOps.linear(x, rows: rows, weight: weight, outputs: outputs, inputs: inputs)
    let h = try TrainingOps.loraForward(x, rows: rows, a: a, b: b, rank: rank, outputs: outputs, inputs: inputs, scale: scale, into: &y)
    var dx = try TrainingOps.linearInputGradient(r, rows: rows, weight: weight, outputs: outputs, inputs: inputs)
    var dA = [Double](repeating: 0, count: a.count)
    var dB = [Double](repeating: 0, count: b.count)
    try TrainingOps.loraBackward(
      r, x: x, hidden: h, rows: rows, a: a, b: b, rank: rank, outputs: outputs, inputs: inputs, scale: scale,
      dA: &dA, dB: &dB, dx: &dx)
    #expect(Check.relativeError(analytic: dx, numeric: try Check.numerical(x) { try loss($0, a, b) }) < Self.tolerance)
    #expect(Check.relativeError(analytic: dA, numeric: try Check.numerical(a) { try loss(x, $0, b) }) < Self.tolerance)
    #expect(Check.relativeError(analytic: dB, numeric: try Check.numerical(b) { try loss(x, a, $0) }) < Self.tolerance)
  }

  @Test func rotaryBackwardIsTheInverseRotation() throws {
    let (rows, heads, d) = (3, 2, 6)
    var generator = SeededGenerator(seed: 9)
    let x = Check.random(rows * heads * d, &generator)
    let angles = Check.random(rows * d / 2, &generator, scale: 3)
    let cosines = angles.map { cos($0) }
    let sines = angles.map { sin($0) }
    let r = Check.random(x.count, &generator)
    var dx = r
    TrainingOps.rotate(&dx, rows: rows, heads: heads, headDimension: d, cos: cosines, sin: sines, inverse: true)
    let numeric = Check.numerical(x) { value in
      var rotated = value
      TrainingOps.rotate(&rotated, rows: rows, heads: heads, headDimension: d, cos: cosines, sin: sines)
      return Check.dot(r, rotated)
    }
    #expect(Check.relativeError(analytic: dx, numeric: numeric) < Self.tolerance)
    // Rotating there and back is the identity.
    var roundTrip = x
    TrainingOps.rotate(&roundTrip, rows: rows, heads: heads, headDimension: d, cos: cosines, sin: sines)
    TrainingOps.rotate(&roundTrip, rows: rows, heads: heads, headDimension: d, cos: cosines, sin: sines, inverse: true)
    #expect(zip(roundTrip, x).allSatisfy { abs($0 - $1) < 1e-12 })
  }

  struct AttentionCase: Sendable, CustomTestStringConvertible {
    var lengths: [Int]
    var heads: Int
    var keyValueHeads: Int
    var headDimension: Int
    var testDescription: String { "lengths \(lengths), \(heads)/\(keyValueHeads) heads of \(headDimension)" }
  }

  @Test(arguments: [
    AttentionCase(lengths: [1], heads: 1, keyValueHeads: 1, headDimension: 2),
    AttentionCase(lengths: [5], heads: 4, keyValueHeads: 2, headDimension: 4),
    AttentionCase(lengths: [3, 4], heads: 3, keyValueHeads: 1, headDimension: 2),
    AttentionCase(lengths: [7], heads: 2, keyValueHeads: 2, headDimension: 6),
  ])
  func causalGroupedAttention(_ testCase: AttentionCase) throws {
    let shape = TrainingOps.AttentionShape(
      lengths: testCase.lengths, heads: testCase.heads, keyValueHeads: testCase.keyValueHeads,
      headDimension: testCase.headDimension)
    var generator = SeededGenerator(seed: UInt64(shape.rows * 31 + shape.heads))
    let q = Check.random(shape.rows * shape.queryWidth, &generator, scale: 2)
    let k = Check.random(shape.rows * shape.keyWidth, &generator, scale: 2)
    let v = Check.random(shape.rows * shape.keyWidth, &generator)
    let r = Check.random(shape.rows * shape.queryWidth, &generator)
    func loss(_ q: [Double], _ k: [Double], _ v: [Double]) throws -> Double {
      Check.dot(r, try TrainingOps.attention(queries: q, keys: k, values: v, shape: shape).output)
    }
    let forward = try TrainingOps.attention(queries: q, keys: k, values: v, shape: shape)
    let (dq, dk, dv) = try TrainingOps.attentionBackward(
      r, queries: q, keys: k, values: v, probabilities: forward.probabilities, shape: shape)
    #expect(Check.relativeError(analytic: dq, numeric: try Check.numerical(q) { try loss($0, k, v) }) < Self.tolerance)
    #expect(Check.relativeError(analytic: dk, numeric: try Check.numerical(k) { try loss(q, $0, v) }) < Self.tolerance)
    #expect(Check.relativeError(analytic: dv, numeric: try Check.numerical(v) { try loss(q, k, $0) }) < Self.tolerance)
    // The first position of every sequence sees only itself: its output is its own value row.
    let first = forward.output[0..<testCase.headDimension]
    #expect(zip(first, v[0..<testCase.headDimension]).allSatisfy { abs($0 - $1) < 1e-12 })
  }

  @Test(arguments: [1, 7, 8, 65])
  func siluAndSwiGLU(count: Int) throws {
    var generator = SeededGenerator(seed: UInt64(count))
    let gate = Check.random(count, &generator, scale: 4)
    let up = Check.random(count, &generator)
    let r = Check.random(count, &generator)
    let (dGate, dUp) = TrainingOps.swiGLUBackward(r, gate: gate, up: up)
    #expect(Check.relativeError(analytic: dGate, numeric: Check.numerical(gate) { Check.dot(r, TrainingOps.swiGLU(gate: $0, up: up)) }) < Self.tolerance)
    #expect(Check.relativeError(analytic: dUp, numeric: Check.numerical(up) { Check.dot(r, TrainingOps.swiGLU(gate: gate, up: $0)) }) < Self.tolerance)
    let dx = TrainingOps.siluBackward(r, x: gate)
    #expect(Check.relativeError(analytic: dx, numeric: Check.numerical(gate) { Check.dot(r, TrainingOps.silu($0)) }) < Self.tolerance)
  }
}
