import Foundation
import Testing

@testable import QCompute

@Suite("Sensitivity and bit allocation")
struct CalibratedSensitivityTests {
  /// The relative error equals ‖(W - Q) Xᵀ‖² / ‖W Xᵀ‖² computed from the activations.
  @Test(arguments: [
    CalibratedGrid.affine(bits: 2, groupSize: 32), .symmetric(bits: 4, groupSize: .perChannel),
    .bilevel(.w2g16g16),
  ])
  func relativeErrorMatchesTheActivations(_ grid: CalibratedGrid) throws {
    var generator = SeededGenerator(seed: 3)
    let (rows, columns, tokens) = (16, 64, 50)
    let activations = correlatedActivations(tokens: tokens, columns: columns, using: &generator)
    let weights = randomWeights(rows: rows, columns: columns, using: &generator)
    let relative = try Sensitivity.relativeOutputError(
      weights: weights, rows: rows, columns: columns, hessian: try activations.gram(), grid: grid)
    let quantized = try weights.withUnsafeBufferPointer {
      try grid.roundToNearest($0, rows: rows, columns: columns)
    }.dequantize()
    var error = 0.0
    var signal = 0.0
    for row in 0..<rows {
      for t in 0..<tokens {
        var exact = 0.0
        var approximate = 0.0
        for c in 0..<columns {
          exact += Double(weights[row * columns + c]) * activations[t, c]
          approximate += Double(quantized[row * columns + c]) * activations[t, c]
        }
        error += (exact - approximate) * (exact - approximate)
        signal += exact * exact
      }
    }
    #expect(abs(relative - error / signal) <= 1e-9 * (error / signal))
    #expect(relative > 0)
  }

  @Test func zeroWeightsHaveNoRelativeError() throws {
    let relative = try Sensitivity.relativeOutputError(
      weights: [Float](repeating: 0, count: 64), rows: 2, columns: 32,
      hessian: Matrix<Double>.identity(32), grid: .affine(bits: 4, groupSize: 32))
    #expect(relative == 0)
  }

  struct Instance: Sendable, CustomTestStringConvertible {
    var seed: UInt64
    var testDescription: String { "seed \(seed)" }
  }

  static func randomInstance(seed: UInt64) -> (tensors: [[BitAllocation.Option]], budget: Int) {
    var generator = SeededGenerator(seed: seed)
    let tensorCount = Int.random(in: 1...6, using: &generator)
    let tensors = (0..<tensorCount).map { _ in
      (0..<Int.random(in: 1...4, using: &generator)).map { _ in
        BitAllocation.Option(
          bits: 8 * Int.random(in: 2...40, using: &generator),
          error: Double.random(in: 0..<10, using: &generator))
      }
    }
    let low = tensors.map { $0.map(\.bits).min() ?? 0 }.reduce(0, +)
    let high = tensors.map { $0.map(\.bits).max() ?? 0 }.reduce(0, +)
    return (tensors, Int.random(in: low...high, using: &generator))
  }

  /// The least error over every combination that fits.
  static func bruteForce(_ tensors: [[BitAllocation.Option]], budget: Int) -> Double {
    var best = Double.infinity
    func visit(_ t: Int, bits: Int, error: Double) {
      if bits > budget { return }
      if t == tensors.count {
        best = min(best, error)
        return
      }
      for option in tensors[t] { visit(t + 1, bits: bits + option.bits, error: error + option.error) }
    }
    visit(0, bits: 0, error: 0)
    return best
  }

  @Test(arguments: (UInt64(1)...40).map(Instance.init))
  func allocationMatchesBruteForce(_ instance: Instance) throws {
    let (tensors, budget) = Self.randomInstance(seed: instance.seed)
    let choice = try BitAllocation.choose(tensors, budgetBits: budget)
    let bits = zip(tensors, choice).map { $0[$1].bits }.reduce(0, +)
    let error = zip(tensors, choice).map { $0[$1].error }.reduce(0, +)
    #expect(bits <= budget)
    let best = Self.bruteForce(tensors, budget: budget)
    #expect(abs(error - best) <= 1e-12 * max(best, 1))
  }

  /// With few states the costs are rounded up: still within budget, never better than optimal.
  @Test(arguments: (UInt64(100)...110).map(Instance.init))
  func coarseAllocationStaysWithinBudget(_ instance: Instance) throws {
    let (tensors, budget) = Self.randomInstance(seed: instance.seed)
    let best = Self.bruteForce(tensors, budget: budget)
    let outcome = Result { () throws(CalibrationError) -> [Int] in
      try BitAllocation.choose(tensors, budgetBits: budget, maximumStates: 7)
    }
    switch outcome {
    case .success(let choice):
      #expect(zip(tensors, choice).map { $0[$1].bits }.reduce(0, +) <= budget)
      #expect(zip(tensors, choice).map { $0[$1].error }.reduce(0, +) >= best - 1e-12)
    case .failure(let error):
      // Rounding up can make a tight budget infeasible; that must be reported, not overspent.
      #expect(error.description.hasPrefix("Bit budget"))
    }
  }

  @Test func budgetBelowTheCheapestChoiceThrows() {
    let tensors = [[BitAllocation.Option(bits: 64, error: 1)], [.init(bits: 32, error: 0)]]
    #expect(throws: CalibrationError.budgetTooSmall(budgetBits: 95, minimumBits: 96)) {
      _ = try BitAllocation.choose(tensors, budgetBits: 95)
    }
    #expect((try? BitAllocation.choose([], budgetBits: 0)) == [])
  }
}
