import Foundation
import QCompute
import Testing

@testable import QToolSupport

/// `SpeedQStage2.refitLinear`, the bias-free refit of Idefics3's connector, against the normal
/// equations it must solve.
@Suite struct SpeedQStage2LinearTests {
  static func random(_ rows: Int, _ columns: Int, _ generator: inout SplitMixGenerator) throws
    -> Matrix<Float>
  {
    try Matrix(
      rows: rows, columns: columns,
      elements: (0..<(rows * columns)).map { _ in generator.nextGaussian() })
  }

  static func doubles(_ m: Matrix<Float>) throws -> Matrix<Double> {
    try Matrix(rows: m.rows, columns: m.columns, elements: m.elements.map { Double($0) })
  }

  /// `Xqᵀ (Xq Θ − Xfp Wᵀ) + ridge (Θ − Wᵀ) = 0` at the solution, relative to the size of the
  /// right side; at the boundary sizes (tokens = width, one output, one input).
  @Test(arguments: [
    (40, 8, 5, 0.0), (8, 8, 3, 0.0), (1, 1, 1, 0.0), (6, 12, 4, 0.5), (65, 16, 1, 1e-3),
  ])
  func solvesTheNormalEquations(_ shape: (tokens: Int, width: Int, outputs: Int, ridge: Double))
    throws
  {
    var generator = SplitMixGenerator(state: UInt64(shape.tokens * 131 + shape.width))
    let fp = try Self.random(shape.tokens, shape.width, &generator)
    var noisy = fp.elements
    for i in noisy.indices { noisy[i] += 0.3 * generator.nextGaussian() }
    let quantized = try Matrix(rows: shape.tokens, columns: shape.width, elements: noisy)
    let weight = try Self.random(shape.outputs, shape.width, &generator)
    let refit = try SpeedQStage2.refitLinear(
      fpInputs: fp, quantizedInputs: quantized, weight: weight, ridge: shape.ridge)
    #expect(refit.bias.isEmpty)
    #expect(refit.weight.rows == shape.outputs && refit.weight.columns == shape.width)
    let xq = try Self.doubles(quantized)
    let target = try Self.doubles(fp).matmul(try Self.doubles(weight), transposeOther: true)
    let theta = try Self.doubles(refit.weight)
    let residual = try xq.matmul(theta, transposeOther: true)
    var worst = 0.0
    var scale = 0.0
    for i in 0..<shape.width {
      for o in 0..<shape.outputs {
        var gradient = 0.0
        var right = 0.0
        for t in 0..<shape.tokens {
          gradient += xq[t, i] * (residual[t, o] - target[t, o])
          right += abs(xq[t, i] * target[t, o])
        }
        gradient += shape.ridge * (theta[o, i] - Double(weight[o, i]))
        worst = max(worst, abs(gradient))
        scale = max(scale, right)
      }
    }
    // Float32 storage of Θ bounds how small the gradient gets.
    #expect(worst <= 1e-4 * max(scale, 1), "normal equations off by \(worst) of \(scale)")
  }

  @Test func identicalInputsKeepTheWeight() throws {
    var generator = SplitMixGenerator(state: 7)
    let inputs = try Self.random(30, 6, &generator)
    let weight = try Self.random(4, 6, &generator)
    let refit = try SpeedQStage2.refitLinear(
      fpInputs: inputs, quantizedInputs: inputs, weight: weight)
    let change = zip(refit.weight.elements, weight.elements).map { abs($0 - $1) }.max() ?? 0
    #expect(change <= 1e-4)
  }

  @Test func tooFewTokensOrMismatchedShapesAreRefused() throws {
    var generator = SplitMixGenerator(state: 9)
    let inputs = try Self.random(3, 6, &generator)
    #expect(throws: SpeedQError.self) {
      try SpeedQStage2.refitLinear(
        fpInputs: inputs, quantizedInputs: inputs, weight: try Self.random(2, 6, &generator))
    }
    #expect(throws: SpeedQError.self) {
      try SpeedQStage2.refitLinear(
        fpInputs: inputs, quantizedInputs: inputs, weight: try Self.random(2, 5, &generator),
        ridge: 1)
    }
  }
}
