import Foundation
import Testing

@testable import QEngine

/// Losses and the optimiser against Fixtures/make_training_fixtures.py, gradients against finite differences.
@Suite struct TrainingLossTests {
  struct Expected: Decodable {
    struct Adam: Decodable {
      var lr, beta1, beta2, eps, weight_decay: Double
      var initial: [Float]
      var gradients: [[Float]]
      var final: [Double]
    }
    var vocab: Int
    var student, teacher: [Float]
    var targets: [Int]
    var mask: [Bool]
    var label_smoothing, cross_entropy_smoothed, cross_entropy: Double
    var forward_kl_mean_masked, reverse_kl_mean_masked, forward_kl_sum, reverse_kl_sum: Double
    var gamma, cakld_sum_masked: Double
    var adamw: Adam
  }

  static func expected() throws -> Expected {
    let url = LLMFixtures.root.appending(path: "training/expected.json")
    return try JSONDecoder().decode(Expected.self, from: try Data(contentsOf: url))
  }

  static func close(_ a: Double, _ b: Double, _ tolerance: Double = 1e-6) -> Bool {
    abs(a - b) <= tolerance * max(1, abs(b))
  }

  @Test func valuesMatchNumpy() throws {
    let e = try Self.expected()
    let v = e.vocab
    let smoothed = try TrainingLoss.crossEntropy(logits: e.student, vocabularySize: v, targets: e.targets, labelSmoothing: e.label_smoothing)
    let plain = try TrainingLoss.crossEntropy(logits: e.student, vocabularySize: v, targets: e.targets)
    #expect(Self.close(smoothed.value, e.cross_entropy_smoothed))
    #expect(Self.close(plain.value, e.cross_entropy))
    let forward = try TrainingLoss.forwardKL(student: e.student, teacher: e.teacher, vocabularySize: v, mask: e.mask)
    let reverse = try TrainingLoss.reverseKL(student: e.student, teacher: e.teacher, vocabularySize: v, mask: e.mask)
    #expect(Self.close(forward.value, e.forward_kl_mean_masked))
    #expect(Self.close(reverse.value, e.reverse_kl_mean_masked))
    let forwardSum = try TrainingLoss.forwardKL(student: e.student, teacher: e.teacher, vocabularySize: v, reduction: .sum)
    let reverseSum = try TrainingLoss.reverseKL(student: e.student, teacher: e.teacher, vocabularySize: v, reduction: .sum)
    #expect(Self.close(forwardSum.value, e.forward_kl_sum))
    #expect(Self.close(reverseSum.value, e.reverse_kl_sum))
    var confidence = ConfidenceAccumulator()
    try confidence.add(teacherLogits: Array(e.teacher[0..<(2 * v)]), vocabularySize: v)
    try confidence.add(teacherLogits: Array(e.teacher[(2 * v)...]), vocabularySize: v)
    #expect(Self.close(confidence.gamma, e.gamma))
    let cakld = try TrainingLoss.cakld(
      student: e.student, teacher: e.teacher, vocabularySize: v, gamma: confidence.gamma, mask: e.mask, reduction: .sum)
    #expect(Self.close(cakld.value, e.cakld_sum_masked))
  }

  /// Float logits, Double losses: the step is large enough that Float rounding of the logits does not matter.
  @Test func gradientsMatchFiniteDifferences() throws {
    let e = try Self.expected()
    let v = e.vocab
    let losses: [(String, ([Float]) throws -> LossResult)] = [
      ("ce", { try TrainingLoss.crossEntropy(logits: $0, vocabularySize: v, targets: e.targets, labelSmoothing: 0.1) }),
      ("forward", { try TrainingLoss.forwardKL(student: $0, teacher: e.teacher, vocabularySize: v, mask: e.mask) }),
      ("reverse", { try TrainingLoss.reverseKL(student: $0, teacher: e.teacher, vocabularySize: v, mask: e.mask) }),
      ("cakld", { try TrainingLoss.cakld(student: $0, teacher: e.teacher, vocabularySize: v, gamma: 0.3, mask: e.mask, reduction: .sum) }),
    ]
    for (name, loss) in losses {
      let analytic = try loss(e.student).gradient.map(Double.init)
      var numeric: [Int: Double] = [:]
      let step: Float = 1e-2
      for index in e.student.indices {
        var plus = e.student
        plus[index] += step
        var minus = e.student
        minus[index] -= step
        numeric[index] = (try loss(plus).value - loss(minus).value) / Double(2 * step)
      }
      let error = GradientCheck.relativeError(analytic: analytic, numeric: numeric)
      #expect(error < 1e-3, "\(name): relative error \(error)")
    }
    // Unscored rows get no gradient.
    let ce = try losses[0].1(e.student)
    #expect(ce.gradient[v..<(2 * v)].allSatisfy { $0 == 0 })
  }

  @Test func adamWTwoStepsMatchTorchFormula() throws {
    let a = try Self.expected().adamw
    var optimizer = AdamW(beta1: a.beta1, beta2: a.beta2, epsilon: a.eps, weightDecay: a.weight_decay)
    var parameters = ["p": a.initial]
    for gradient in a.gradients {
      try optimizer.update(&parameters, gradients: ["p": gradient], learningRate: a.lr)
    }
    let final = try #require(parameters["p"])
    for (value, expected) in zip(final, a.final) { #expect(abs(Double(value) - expected) < 1e-6) }
  }

  @Test func cosineScheduleWithWarmUp() {
    let schedule = CosineSchedule(peak: 1e-3, totalSteps: 110, warmupSteps: 10)
    #expect(schedule.learningRate(at: 0) == 0)
    #expect(Self.close(schedule.learningRate(at: 5), 5e-4))
    #expect(Self.close(schedule.learningRate(at: 10), 1e-3))
    #expect(Self.close(schedule.learningRate(at: 60), 1e-3 * 0.5 * (1 + cos(Double.pi * 0.5))))
    #expect(abs(schedule.learningRate(at: 110)) < 1e-15)
    let floor = CosineSchedule(peak: 1, totalSteps: 4, minimum: 0.2)
    #expect(Self.close(floor.learningRate(at: 4), 0.2))
  }

  @Test func clippingByGlobalNorm() {
    var gradients: [String: [Float]] = ["a": [3, 0], "b": [4]]
    let norm = GradientClipping.clip(&gradients, maxNorm: 1)
    #expect(Self.close(norm, 5))
    #expect(abs(Double(gradients["a"]?[0] ?? 0) - 0.6) < 1e-6)
    #expect(abs(Double(gradients["b"]?[0] ?? 0) - 0.8) < 1e-6)
    var small: [String: [Float]] = ["a": [0.1]]
    GradientClipping.clip(&small, maxNorm: 1)
    #expect(small["a"] == [0.1])
  }
}
