import Foundation
import Testing

@testable import QEngine

/// The ops the decoder families add, against finite differences and their formulas, at
/// boundary sizes: windowed and soft-capped attention, GELU-tanh gating, soft-capping.
@Suite struct TrainingFamilyOpsTests {
  typealias Check = GradientCheck

  struct WindowCase: CustomTestStringConvertible, Sendable {
    var lengths: [Int]
    var window: Int?
    var softcap: Double?
    var testDescription: String { "\(lengths) window \(window.map(String.init) ?? "none") cap \(softcap ?? 0)" }
  }

  @Test(arguments: [
    WindowCase(lengths: [1], window: 1, softcap: nil),
    WindowCase(lengths: [5], window: 1, softcap: nil),
    WindowCase(lengths: [5], window: 2, softcap: 0.7),
    WindowCase(lengths: [3, 6], window: 4, softcap: nil),
    WindowCase(lengths: [4], window: 9, softcap: 1.3),
    WindowCase(lengths: [6], window: nil, softcap: 0.5),
  ])
  func windowedSoftcappedAttention(_ testCase: WindowCase) throws {
    let shape = TrainingOps.AttentionShape(
      lengths: testCase.lengths, heads: 4, keyValueHeads: 2, headDimension: 4, scale: 0.35,
      window: testCase.window, softcap: testCase.softcap)
    var generator = SeededGenerator(seed: UInt64(shape.rows * 7 + (testCase.window ?? 0)))
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
    #expect(Check.relativeError(analytic: dq, numeric: try Check.numerical(q) { try loss($0, k, v) }) < 1e-6)
    #expect(Check.relativeError(analytic: dk, numeric: try Check.numerical(k) { try loss(q, $0, v) }) < 1e-6)
    #expect(Check.relativeError(analytic: dv, numeric: try Check.numerical(v) { try loss(q, k, $0) }) < 1e-6)
    // Row i of every head's probabilities is zero outside (i - window, i] and sums to 1.
    var index = 0
    for length in testCase.lengths {
      for _ in 0..<shape.heads {
        let p = forward.probabilities[index]
        index += 1
        for row in 0..<length {
          let first = testCase.window.map { max(0, row + 1 - $0) } ?? 0
          for column in 0..<length where column < first || column > row { #expect(p[row * length + column] == 0) }
          let sum = (first...row).reduce(0) { $0 + p[row * length + $1] }
          #expect(abs(sum - 1) < 1e-12)
        }
      }
    }
  }

  /// The inference softmax masks the same keys, with and without cached positions before.
  @Test(arguments: [(1, 0), (2, 0), (3, 4), (8, 2)])
  func inferenceSoftmaxMasksTheWindow(window: Int, past: Int) {
    let rows = 3
    let columns = past + rows
    var scores = (0..<(rows * columns)).map { Float($0 % 5) * 0.3 }
    scores.withUnsafeMutableBufferPointer {
      DecoderModel.causalSoftmax($0, rows: rows, columns: columns, past: past, window: window)
    }
    for row in 0..<rows {
      let last = past + row
      let first = max(0, last + 1 - window)
      let raw = (first...last).map { Double(($0 + row * columns) % 5) * 0.3 }
      let largest = raw.max() ?? 0
      let total = raw.map { exp($0 - largest) }.reduce(0, +)
      for column in 0..<columns {
        let expected = (first...last).contains(column) ? exp(raw[column - first] - largest) / total : 0
        #expect(abs(Double(scores[row * columns + column]) - expected) < 1e-6)
      }
    }
  }

  @Test(arguments: [1, 7, 64, 65])
  func geluTanhGating(count: Int) throws {
    var generator = SeededGenerator(seed: UInt64(count + 40))
    let gate = Check.random(count, &generator, scale: 4)
    let up = Check.random(count, &generator)
    let r = Check.random(count, &generator)
    let out = TrainingOps.gatedActivation(gate: gate, up: up, .geluTanh)
    for index in 0..<count {
      let x = gate[index]
      let expected = 0.5 * x * (1 + tanh((2 / Double.pi).squareRoot() * (x + 0.044715 * x * x * x))) * up[index]
      #expect(abs(out[index] - expected) < 1e-12)
    }
    let (dGate, dUp) = TrainingOps.gatedActivationBackward(r, gate: gate, up: up, .geluTanh)
    let numericGate = Check.numerical(gate) { Check.dot(r, TrainingOps.gatedActivation(gate: $0, up: up, .geluTanh)) }
    let numericUp = Check.numerical(up) { Check.dot(r, TrainingOps.gatedActivation(gate: gate, up: $0, .geluTanh)) }
    #expect(Check.relativeError(analytic: dGate, numeric: numericGate) < 1e-7)
    #expect(Check.relativeError(analytic: dUp, numeric: numericUp) < 1e-7)
  }

  @Test(arguments: [1, 5, 64])
  func softcapping(count: Int) {
    var generator = SeededGenerator(seed: UInt64(count + 80))
    let x = Check.random(count, &generator, scale: 30)
    let r = Check.random(count, &generator)
    var y = x
    TrainingOps.softcap(&y, cap: 2.5)
    for index in 0..<count { #expect(abs(y[index] - 2.5 * tanh(x[index] / 2.5)) < 1e-12) }
    var analytic = r
    TrainingOps.softcapBackward(&analytic, outputs: y, cap: 2.5)
    let numeric = Check.numerical(x) { values in
      var capped = values
      TrainingOps.softcap(&capped, cap: 2.5)
      return Check.dot(r, capped)
    }
    #expect(Check.relativeError(analytic: analytic, numeric: numeric) < 1e-7)
  }
}
