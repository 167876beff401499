import Foundation
import QCompute

/// A loss value and its gradient with respect to the logits it was computed from.
public struct LossResult: Sendable {
  public var value: Double
  /// `dL/dlogits`, laid out as the logits were, `[rows, vocabularySize]`.
  public var gradient: [Float]
}

/// The training losses on row-major logits `[rows, vocabularySize]`, computed in Double.
///
/// Rows whose target is negative (Hugging Face's `-100`) or whose mask is false are not scored
/// and get a zero gradient.
public enum TrainingLoss {
  /// How per-row losses are combined: SPEED-Q sums its KL terms over tokens, cross-entropy is a mean.
  public enum Reduction: Sendable { case mean, sum }

  /// Cross-entropy with label smoothing as Hugging Face's `LabelSmoother` computes it:
  /// `(1 - ε) mean(-log p[target]) + ε mean(-mean_v log p[v])`, over scored rows.
  /// - Throws: `TrainingError.shapeMismatch` when logits and targets disagree.
  public static func crossEntropy(
    logits: [Float], vocabularySize: Int, targets: [Int], labelSmoothing: Double = 0
  ) throws -> LossResult {
    let rows = try rowCount(logits.count, vocabularySize, operation: "crossEntropy")
    guard targets.count == rows else {
      throw TrainingError.shapeMismatch(operation: "crossEntropy", detail: "\(rows) rows of logits and \(targets.count) targets")
    }
    for target in targets where target >= vocabularySize {
      throw TrainingError.invalidInput(operation: "crossEntropy", reason: "target \(target) is outside the vocabulary of \(vocabularySize)")
    }
    let scored = targets.filter { $0 >= 0 }.count
    var gradient = [Float](repeating: 0, count: logits.count)
    guard scored > 0 else { return LossResult(value: 0, gradient: gradient) }
    let epsilon = labelSmoothing
    let uniform = epsilon / Double(vocabularySize)
    var rowLosses = [Double](repeating: 0, count: rows)
    forEachScoredRow(rows: rows, vocabularySize: vocabularySize, scored: { targets[$0] >= 0 }, logits: [logits],
      gradient: &gradient, rowLosses: &rowLosses) { row, inputs, buffers, gradientRow in
      let distribution = buffers[0]
      distribution.softmax(inputs[0])
      var meanNegative: Double = 0
      for index in 0..<vocabularySize { meanNegative -= distribution.log[index] }
      meanNegative /= Double(vocabularySize)
      let target = targets[row]
      for index in 0..<vocabularySize {
        let wanted = index == target ? uniform + (1 - epsilon) : uniform
        gradientRow[index] = Float((distribution.probability[index] - wanted) / Double(scored))
      }
      return (1 - epsilon) * -distribution.log[target] + epsilon * meanNegative
    }
    var total: Double = 0
    for row in 0..<rows where targets[row] >= 0 { total += rowLosses[row] }
    return LossResult(value: total / Double(scored), gradient: gradient)
  }

  /// Forward KL `KL(P_teacher ‖ P_student)` per row; gradient `p_s - p_t`.
  public static func forwardKL(
    student: [Float], teacher: [Float], vocabularySize: Int, mask: [Bool]? = nil, reduction: Reduction = .mean
  ) throws -> LossResult {
    try cakld(student: student, teacher: teacher, vocabularySize: vocabularySize, gamma: 0, mask: mask, reduction: reduction)
  }

  /// Reverse KL `KL(P_student ‖ P_teacher)` per row; gradient `p_s ∘ (log p_s - log p_t - KL)`.
  public static func reverseKL(
    student: [Float], teacher: [Float], vocabularySize: Int, mask: [Bool]? = nil, reduction: Reduction = .mean
  ) throws -> LossResult {
    try cakld(student: student, teacher: teacher, vocabularySize: vocabularySize, gamma: 1, mask: mask, reduction: reduction)
  }

  /// SPEED-Q's (BitDistiller's) confidence-aware KL: `γ KL(P_s ‖ P_t) + (1 - γ) KL(P_t ‖ P_s)`,
  /// with `γ` the teacher's mean top-1 probability (see `ConfidenceAccumulator`).
  /// SPEED-Q sums it over tokens (`reduction: .sum`).
  public static func cakld(
    student: [Float], teacher: [Float], vocabularySize: Int, gamma: Double, mask: [Bool]? = nil,
    reduction: Reduction = .mean
  ) throws -> LossResult {
    let rows = try rowCount(student.count, vocabularySize, operation: "cakld")
    guard teacher.count == student.count else {
      throw TrainingError.shapeMismatch(operation: "cakld", detail: "student has \(student.count) logits, teacher \(teacher.count)")
    }
    if let mask, mask.count != rows {
      throw TrainingError.shapeMismatch(operation: "cakld", detail: "\(rows) rows of logits and a mask of \(mask.count)")
    }
    let scored = mask.map { $0.filter { $0 }.count } ?? rows
    var gradient = [Float](repeating: 0, count: student.count)
    guard scored > 0 else { return LossResult(value: 0, gradient: gradient) }
    let divisor = reduction == .mean ? Double(scored) : 1
    var rowLosses = [Double](repeating: 0, count: rows)
    forEachScoredRow(rows: rows, vocabularySize: vocabularySize, scored: { mask?[$0] ?? true },
      logits: [student, teacher], gradient: &gradient, rowLosses: &rowLosses) { _, inputs, buffers, gradientRow in
      let (studentRow, teacherRow) = (buffers[0], buffers[1])
      studentRow.softmax(inputs[0])
      teacherRow.softmax(inputs[1])
      var forward: Double = 0
      var reverse: Double = 0
      for index in 0..<vocabularySize {
        let difference = studentRow.log[index] - teacherRow.log[index]
        forward -= teacherRow.probability[index] * difference
        reverse += studentRow.probability[index] * difference
      }
      for index in 0..<vocabularySize {
        let ps = studentRow.probability[index]
        let difference = studentRow.log[index] - teacherRow.log[index]
        let value = gamma * ps * (difference - reverse) + (1 - gamma) * (ps - teacherRow.probability[index])
        gradientRow[index] = Float(value / divisor)
      }
      return gamma * reverse + (1 - gamma) * forward
    }
    var total: Double = 0
    for row in 0..<rows where mask?[row] ?? true { total += rowLosses[row] }
    return LossResult(value: total / divisor, gradient: gradient)
  }

  /// `log softmax` of `count` logits from `base`, in Double.
  static func logSoftmax(_ logits: [Float], base: Int, count: Int, into out: inout [Double]) {
    var largest = -Double.infinity
    for index in 0..<count { largest = max(largest, Double(logits[base + index])) }
    var sum: Double = 0
    for index in 0..<count { sum += Foundation.exp(Double(logits[base + index]) - largest) }
    let logSum = largest + Foundation.log(sum)
    for index in 0..<count { out[index] = Double(logits[base + index]) - logSum }
  }

  /// Runs `body` on each scored row, rows split across the cores. `body` gets the row, that
  /// row of each of `logits`, one `RowDistribution` scratch per input (its worker's own) and the
  /// row of `gradient` to fill; it returns the row's loss, stored in `rowLosses[row]` so the
  /// caller sums them in row order whatever the split.
  static func forEachScoredRow(
    rows: Int, vocabularySize: Int, scored: (Int) -> Bool, logits: [[Float]], gradient: inout [Float],
    rowLosses: inout [Double],
    _ body: (Int, [UnsafePointer<Float>], [RowDistribution], UnsafeMutablePointer<Float>) -> Double
  ) {
    var inputs: [UnsafePointer<Float>] = []
    func withInputs(_ index: Int, _ run: () -> Void) {
      guard index < logits.count else { return run() }
      logits[index].withUnsafeBufferPointer { buffer in
        guard let base = buffer.baseAddress else { return }
        inputs.append(base)
        withInputs(index + 1, run)
      }
    }
    withInputs(0) {
      gradient.withUnsafeMutableBufferPointer { gradientBuffer in
        rowLosses.withUnsafeMutableBufferPointer { lossBuffer in
          guard let gradientBase = gradientBuffer.baseAddress, let lossBase = lossBuffer.baseAddress else { return }
          let (gradients, losses) = (SendableMutablePointer(gradientBase), SendableMutablePointer(lossBase))
          let rowInputs = inputs
          // Blocks of at least 16 rows, as each allocates its own scratch rows.
          let rowElements = vocabularySize * logits.count
          forEachRowBlock(rows: rows, elementsPerRow: rowElements, minimumElementsPerBlock: max(engineBlockElements, 16 * rowElements)) { range in
            let buffers = rowInputs.map { _ in RowDistribution(count: vocabularySize) }
            for row in range where scored(row) {
              let offset = row * vocabularySize
              losses.pointer[row] = body(
                row, rowInputs.map { $0 + offset }, buffers, gradients.pointer + offset)
            }
          }
        }
      }
    }
  }

  static func rowCount(_ count: Int, _ vocabularySize: Int, operation: String) throws -> Int {
    guard vocabularySize > 0, count % vocabularySize == 0 else {
      throw TrainingError.shapeMismatch(operation: operation, detail: "\(count) logits are not rows of \(vocabularySize)")
    }
    return count / vocabularySize
  }
}

/// The teacher's mean top-1 probability over every position seen: SPEED-Q's `γ` for CAKLD,
/// computed before training and then fixed.
public struct ConfidenceAccumulator: Sendable {
  public private(set) var sum: Double = 0
  public private(set) var positions = 0

  public init() {}

  /// Adds every row of `teacherLogits`.
  public mutating func add(teacherLogits: [Float], vocabularySize: Int) throws {
    let rows = try TrainingLoss.rowCount(teacherLogits.count, vocabularySize, operation: "confidence")
    var logProbabilities = [Double](repeating: 0, count: vocabularySize)
    for row in 0..<rows {
      TrainingLoss.logSoftmax(teacherLogits, base: row * vocabularySize, count: vocabularySize, into: &logProbabilities)
      sum += Foundation.exp(logProbabilities.max() ?? 0)
      positions += 1
    }
  }

  /// The mean top-1 probability, 0 before any position was added.
  public var gamma: Double { positions == 0 ? 0 : sum / Double(positions) }
}

/// One row's softmax in Double, kept both as probabilities and as log-probabilities, so each
/// logit costs one `exp` (scratch memory owned by one worker).
final class RowDistribution {
  let count: Int
  let probability: UnsafeMutablePointer<Double>
  let log: UnsafeMutablePointer<Double>

  init(count: Int) {
    self.count = count
    probability = .allocate(capacity: max(1, count))
    log = .allocate(capacity: max(1, count))
  }

  deinit {
    probability.deallocate()
    log.deallocate()
  }

  /// `p = exp(x - max) / Σ`, `log p = x - max - log Σ`.
  func softmax(_ logits: UnsafePointer<Float>) {
    var largest = -Double.infinity
    for index in 0..<count { largest = max(largest, Double(logits[index])) }
    var sum: Double = 0
    for index in 0..<count {
      let e = Foundation.exp(Double(logits[index]) - largest)
      probability[index] = e
      sum += e
    }
    let logSum = Foundation.log(sum)
    let inverse = 1 / sum
    for index in 0..<count {
      probability[index] *= inverse
      log[index] = Double(logits[index]) - largest - logSum
    }
  }
}
