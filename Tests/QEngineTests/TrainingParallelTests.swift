import Foundation
import QCompute
import Testing

@testable import QEngine

/// The training step's element-wise work is split across the cores once it is large enough.
/// These tests take sizes on both sides of that threshold and check the split against
/// references written out here: a serial loop, the loss formulas in Double, and the pack's own
/// bilevel quantizer.
@Suite struct TrainingParallelTests {
  typealias Generator = KernelFusedProductTests.Generator

  static func random(_ count: Int, seed: UInt64, in range: ClosedRange<Float> = -1...1) -> [Float] {
    var generator = Generator(state: seed)
    return (0..<count).map { _ in generator.uniform(range) }
  }

  /// Sizes around AdamW's chunk of 4096 and its block threshold, plus one of several blocks.
  @Test(arguments: [0, 1, 4095, 4096, 4097, 8191, 8193, 70001])
  func adamWEqualsASerialLoopBitForBit(count: Int) throws {
    let (lr, b1, b2, eps, decayRate) = (3e-4, 0.9, 0.999, 1e-8, 0.01)
    var optimizer = AdamW(beta1: b1, beta2: b2, epsilon: eps, weightDecay: decayRate)
    var parameters = ["p": Self.random(count, seed: 1)]
    var expected = parameters["p"]!
    var m = [Float](repeating: 0, count: count)
    var v = m
    for step in 1...3 {
      let gradient = Self.random(count, seed: UInt64(10 + step), in: -0.1...0.1)
      try optimizer.update(&parameters, gradients: ["p": gradient], learningRate: lr)
      let stepSize = Float(lr / (1 - pow(b1, Double(step))))
      let root2 = Float((1 - pow(b2, Double(step))).squareRoot())
      let decay = Float(1 - lr * decayRate)
      for i in 0..<count {
        m[i] = Float(b1) * m[i] + (1 - Float(b1)) * gradient[i]
        v[i] = Float(b2) * v[i] + (1 - Float(b2)) * gradient[i] * gradient[i]
        expected[i] *= decay
        expected[i] -= stepSize * m[i] / (v[i].squareRoot() / root2 + Float(eps))
      }
    }
    #expect(parameters["p"] == expected)
    #expect(optimizer.firstMoments["p"] == m && optimizer.secondMoments["p"] == v)
  }

  /// A parameter in `decayExempt` takes the Adam step only: with a zero gradient it stays put,
  /// while the same values outside the set shrink by `1 - lr λ`.
  @Test func decayExemptParametersTakeNoDecay() throws {
    var optimizer = AdamW(weightDecay: 0.1)
    optimizer.decayExempt = ["norm"]
    let values = Self.random(65, seed: 3)
    var parameters = ["norm": values, "weight": values]
    let zero = [Float](repeating: 0, count: 65)
    try optimizer.update(&parameters, gradients: ["norm": zero, "weight": zero], learningRate: 0.5)
    #expect(parameters["norm"] == values)
    #expect(parameters["weight"] == values.map { $0 * Float(1 - 0.5 * 0.1) })
  }

  /// Softmax of one row in Double, the textbook way.
  static func logSoftmax(_ row: ArraySlice<Float>) -> [Double] {
    let values = row.map(Double.init)
    let largest = values.max()!
    let logSum = largest + log(values.reduce(0) { $0 + exp($1 - largest) })
    return values.map { $0 - logSum }
  }

  static func close(_ a: Double, _ b: Double, _ tolerance: Double) -> Bool {
    abs(a - b) <= tolerance * max(1, abs(b))
  }

  /// 1 row stays on the calling thread; 40 and 67 rows of 1031 logits are split.
  @Test(arguments: [1, 40, 67])
  func lossesSplitAcrossCoresMatchTheFormulas(rows: Int) throws {
    let vocabulary = 1031
    let student = Self.random(rows * vocabulary, seed: 3, in: -4...4)
    let teacher = Self.random(rows * vocabulary, seed: 4, in: -4...4)
    let targets = (0..<rows).map { $0 % 5 == 2 ? -100 : ($0 * 37) % vocabulary }
    let mask = targets.map { $0 >= 0 }
    let scored = Double(mask.filter { $0 }.count)
    let (gamma, epsilon) = (0.3, 0.1)
    let ce = try TrainingLoss.crossEntropy(logits: student, vocabularySize: vocabulary, targets: targets, labelSmoothing: epsilon)
    let kl = try TrainingLoss.cakld(
      student: student, teacher: teacher, vocabularySize: vocabulary, gamma: gamma, mask: mask, reduction: .sum)
    var ceTotal: Double = 0
    var klTotal: Double = 0
    for row in 0..<rows {
      let range = (row * vocabulary)..<((row + 1) * vocabulary)
      guard mask[row] else {
        #expect(ce.gradient[range].allSatisfy { $0 == 0 } && kl.gradient[range].allSatisfy { $0 == 0 })
        continue
      }
      let ls = Self.logSoftmax(student[range])
      let lt = Self.logSoftmax(teacher[range])
      let ps = ls.map { exp($0) }
      let pt = lt.map { exp($0) }
      ceTotal += (1 - epsilon) * -ls[targets[row]] + epsilon * -ls.reduce(0, +) / Double(vocabulary)
      let forward = zip(pt, zip(lt, ls)).reduce(0) { $0 + $1.0 * ($1.1.0 - $1.1.1) }
      let reverse = zip(ps, zip(ls, lt)).reduce(0) { $0 + $1.0 * ($1.1.0 - $1.1.1) }
      klTotal += gamma * reverse + (1 - gamma) * forward
      for index in 0..<vocabulary {
        let wanted = epsilon / Double(vocabulary) + (index == targets[row] ? 1 - epsilon : 0)
        #expect(Self.close(Double(ce.gradient[range.lowerBound + index]), (ps[index] - wanted) / scored, 1e-6))
        let klGradient = gamma * ps[index] * (ls[index] - lt[index] - reverse) + (1 - gamma) * (ps[index] - pt[index])
        #expect(Self.close(Double(kl.gradient[range.lowerBound + index]), klGradient, 1e-6))
      }
    }
    #expect(Self.close(ce.value, ceTotal / scored, 1e-12))
    #expect(Self.close(kl.value, klTotal, 1e-12))
  }

  /// The fake quantizer's grid weights equal the pack's bilevel quantizer, dequantized, on
  /// matrices from one group to several blocks of rows.
  @Test(arguments: [(1, 16, 2, 16, 1), (16, 48, 2, 16, 16), (63, 256, 2, 16, 16), (64, 1024, 2, 16, 16), (65, 256, 2, 16, 16), (576, 1536, 2, 16, 16), (64, 512, 4, 32, 128)])
  func fakeQuantizerEqualsTheBilevelPack(rows: Int, columns: Int, bits: Int, group: Int, chunk: Int) throws {
    let weights = Self.random(rows * columns, seed: UInt64(rows * 7 + columns), in: -0.2...0.2)
    let quantizer = GroupAffineFakeQuantizer(bits: bits, groupSize: group, scaleGroupSize: chunk)
    let values = quantizer.fakeQuantize(weights, rows: rows, columns: columns).values
    let configuration = BilevelQuantizer.Configuration(bits: bits, groupSize: group, scaleGroupSize: chunk)
    let packed = try weights.withUnsafeBufferPointer {
      try BilevelQuantizer.quantize($0, rows: rows, columns: columns, configuration: configuration)
    }
    let restored = packed.dequantize()
    let worst = zip(values, restored).map { abs($0 - $1) }.max() ?? 0
    #expect(worst <= 1e-6)
  }

  /// Element-wise ops of the decoder graph, below and above the split, against their formulas.
  @Test(arguments: [1, 4097, 70001])
  func swiGLUAndResidualAddMatchTheirFormulas(count: Int) {
    let gate = Self.random(count, seed: 5, in: -6...6)
    let up = Self.random(count, seed: 6)
    let dy = Self.random(count, seed: 7)
    let out = TrainingOps.swiGLU(gate: gate, up: up)
    let (dGate, dUp) = TrainingOps.swiGLUBackward(dy, gate: gate, up: up)
    for i in 0..<count {
      let (g, u, d) = (Double(gate[i]), Double(up[i]), Double(dy[i]))
      let sigma = 1 / (1 + exp(-g))
      #expect(Self.close(Double(out[i]), g * sigma * u, 1e-6))
      #expect(Self.close(Double(dUp[i]), d * g * sigma, 1e-6))
      #expect(Self.close(Double(dGate[i]), d * u * sigma * (1 + g * (1 - sigma)), 1e-6))
    }
    var sum = up
    TrainingOps.add(dy, to: &sum)
    #expect(sum == zip(up, dy).map { $0 + $1 })
  }

  /// Causal softmax and its backward on 1, 64 and 181 rows (the last split across the cores).
  @Test(arguments: [1, 64, 181])
  func causalSoftmaxAndBackwardMatchTheirFormulas(rows: Int) {
    var scores = Self.random(rows * rows, seed: 8, in: -5...5)
    let original = scores
    TrainingOps.causalSoftmax(&scores, rows: rows)
    var dS = Self.random(rows * rows, seed: 9)
    let dP = dS
    TrainingOps.softmaxBackward(&dS, probabilities: scores, rows: rows)
    for row in 0..<rows {
      let base = row * rows
      let logits = original[base...(base + row)].map(Double.init)
      let largest = logits.max()!
      let sum = logits.reduce(0) { $0 + exp($1 - largest) }
      let p = logits.map { exp($0 - largest) / sum }
      let dot = (0...row).reduce(0.0) { $0 + Double(dP[base + $1]) * p[$1] }
      for column in 0..<rows {
        let expected = column <= row ? p[column] : 0
        #expect(Self.close(Double(scores[base + column]), expected, 1e-6))
        let gradient = column <= row ? p[column] * (Double(dP[base + column]) - dot) : 0
        #expect(abs(Double(dS[base + column]) - gradient) <= 1e-6)
      }
    }
  }

  /// The global norm in Double, and every element scaled by the same coefficient, for tensors
  /// below and above the split; the sum of squares is per chunk of 4096 in order.
  @Test func clippingByGlobalNormAcrossTheCores() {
    let sizes = [0, 1, 4095, 4097, 70001]
    var gradients: [String: [Float]] = [:]
    for (index, size) in sizes.enumerated() { gradients["t\(index)"] = Self.random(size, seed: UInt64(20 + index)) }
    let original = gradients
    var expectedSquares: Double = 0
    for name in original.keys.sorted() {
      let values = original[name]!
      let chunks = stride(from: 0, to: values.count, by: 4096).map { start in
        values[start..<min(values.count, start + 4096)].reduce(0.0) { $0 + Double($1) * Double($1) }
      }
      expectedSquares += chunks.reduce(0, +)
    }
    let norm = GradientClipping.clip(&gradients, maxNorm: 1)
    #expect(norm == expectedSquares.squareRoot())
    let coefficient = 1 / (norm + 1e-6)
    for (name, values) in original {
      #expect(gradients[name] == values.map { Float(Double($0) * coefficient) })
    }
  }
}
