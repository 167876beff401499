import Foundation
import QCompute

/// Adam with decoupled weight decay, as `torch.optim.AdamW` applies it:
/// `p ← p (1 - lr λ)`, then `p ← p - lr m̂ / (√v̂ + ε)` with bias-corrected moments.
public struct AdamW: Sendable {
  public var beta1: Double
  public var beta2: Double
  public var epsilon: Double
  public var weightDecay: Double
  /// Steps taken so far; the bias correction uses it. Settable, with the moments, so a saved
  /// run can be resumed exactly.
  public var step = 0
  public var firstMoments: [String: [Float]] = [:]
  public var secondMoments: [String: [Float]] = [:]
  /// Parameters updated without weight decay (norms and biases, as Hugging Face's Trainer
  /// leaves them out of its decay group).
  public var decayExempt: Set<String> = []

  public init(beta1: Double = 0.9, beta2: Double = 0.999, epsilon: Double = 1e-8, weightDecay: Double = 0.01) {
    self.beta1 = beta1
    self.beta2 = beta2
    self.epsilon = epsilon
    self.weightDecay = weightDecay
  }

  /// Updates every parameter that has a gradient, at `learningRate`.
  /// - Throws: `TrainingError` for a gradient without a parameter or of another size, and
  ///   `.invalidInput` naming the parameter and index of a NaN or infinite gradient, before
  ///   anything is changed.
  public mutating func update(
    _ parameters: inout [String: [Float]], gradients: [String: [Float]], learningRate: Double
  ) throws {
    try Self.checkFinite(gradients, step: step + 1)
    step += 1
    let correction1 = 1 - Foundation.pow(beta1, Double(step))
    let correction2 = 1 - Foundation.pow(beta2, Double(step))
    let decay = Float(1 - learningRate * weightDecay)
    let b1 = Float(beta1)
    let b2 = Float(beta2)
    let stepSize = Float(learningRate / correction1)
    let root2 = Float(correction2.squareRoot())
    let eps = Float(epsilon)
    for name in gradients.keys.sorted() {
      guard let gradient = gradients[name], var values = parameters.removeValue(forKey: name) else {
        throw TrainingError.unknownParameter(name: name)
      }
      guard values.count == gradient.count else {
        parameters[name] = values
        throw TrainingError.shapeMismatch(operation: "AdamW", detail: "parameter '\(name)' has \(values.count) values, its gradient \(gradient.count)")
      }
      var m = firstMoments.removeValue(forKey: name) ?? [Float](repeating: 0, count: values.count)
      var v = secondMoments.removeValue(forKey: name) ?? [Float](repeating: 0, count: values.count)
      let moments = AdamMoments(
        b1: b1, b2: b2, decay: decayExempt.contains(name) ? 1 : decay, stepSize: stepSize, root2: root2, eps: eps)
      moments.apply(gradient, to: &values, first: &m, second: &v)
      parameters[name] = values
      firstMoments[name] = m
      secondMoments[name] = v
    }
  }

  /// A NaN or infinite gradient would reach every later step through the moments, so training
  /// stops at the first one, naming the parameter and the element.
  static func checkFinite(_ gradients: [String: [Float]], step: Int) throws(TrainingError) {
    for name in gradients.keys.sorted() {
      guard let gradient = gradients[name] else { continue }
      let found = gradient.withUnsafeBufferPointer { PackEncoder.firstNonFinite($0, shape: [$0.count]) }
      if let (index, value) = found {
        throw .invalidInput(
          operation: "AdamW step \(step)", reason: "the gradient of parameter '\(name)' holds \(value) at index \(index[0])")
      }
    }
  }
}

/// One AdamW step's constants, applied element by element across the cores: every element
/// gets the same arithmetic in the same order as a serial loop, so the split changes nothing.
struct AdamMoments {
  let b1: Float
  let b2: Float
  let decay: Float
  let stepSize: Float
  let root2: Float
  let eps: Float

  /// Chunks small enough to split a 576-wide norm, large enough to amortize a worker.
  static let chunk = 4096

  func apply(_ gradient: [Float], to values: inout [Float], first m: inout [Float], second v: inout [Float]) {
    let count = values.count
    guard count > 0 else { return }
    gradient.withUnsafeBufferPointer { g in
      values.withUnsafeMutableBufferPointer { p in
        m.withUnsafeMutableBufferPointer { mp in
          v.withUnsafeMutableBufferPointer { vp in
            guard let gBase = g.baseAddress, let pBase = p.baseAddress, let mBase = mp.baseAddress,
              let vBase = vp.baseAddress
            else { return }
            let (parameters, firsts, seconds) = (
              SendableMutablePointer(pBase), SendableMutablePointer(mBase),
              SendableMutablePointer(vBase)
            )
            let gradients = SendableMutablePointer(UnsafeMutablePointer(mutating: gBase))
            let chunk = Self.chunk
            forEachRowBlock(rows: (count + chunk - 1) / chunk, elementsPerRow: chunk, minimumElementsPerBlock: engineBlockElements) { range in
              for index in (range.lowerBound * chunk)..<min(count, range.upperBound * chunk) {
                let g = gradients.pointer[index]
                let mNew = b1 * firsts.pointer[index] + (1 - b1) * g
                let vNew = b2 * seconds.pointer[index] + (1 - b2) * g * g
                firsts.pointer[index] = mNew
                seconds.pointer[index] = vNew
                var w = parameters.pointer[index] * decay
                w -= stepSize * mNew / (vNew.squareRoot() / root2 + eps)
                parameters.pointer[index] = w
              }
            }
          }
        }
      }
    }
  }
}

/// Cosine decay from `peak` to `minimum` after a linear warm-up from 0 (Hugging Face's
/// `get_cosine_schedule_with_warmup` when `minimum` is 0).
public struct CosineSchedule: Sendable {
  public var peak: Double
  public var totalSteps: Int
  public var warmupSteps: Int
  public var minimum: Double

  public init(peak: Double, totalSteps: Int, warmupSteps: Int = 0, minimum: Double = 0) {
    self.peak = peak
    self.totalSteps = totalSteps
    self.warmupSteps = warmupSteps
    self.minimum = minimum
  }

  /// The learning rate for step `step` (0-based).
  public func learningRate(at step: Int) -> Double {
    if step < warmupSteps { return peak * Double(step) / Double(max(1, warmupSteps)) }
    let progress = Double(step - warmupSteps) / Double(max(1, totalSteps - warmupSteps))
    let cosine = 0.5 * (1 + Foundation.cos(Double.pi * min(1, progress)))
    return minimum + (peak - minimum) * cosine
  }
}

/// Gradient clipping by global norm, as `torch.nn.utils.clip_grad_norm_`.
public enum GradientClipping {
  /// Scales every gradient by `maxNorm / (norm + 1e-6)` when that is below 1; returns the norm
  /// before clipping.
  ///
  /// The squares are summed in Double over fixed chunks of each tensor, tensors in name order
  /// and chunks in index order, so the norm does not depend on the dictionary's order (which
  /// changes from process to process) nor on how the chunks are spread over the cores: a run
  /// resumed in a new process clips exactly as the first one would have.
  @discardableResult
  public static func clip(_ gradients: inout [String: [Float]], maxNorm: Double) -> Double {
    var squares: Double = 0
    for name in gradients.keys.sorted() {
      guard let values = gradients[name] else { continue }
      squares += sumOfSquares(values)
    }
    let norm = squares.squareRoot()
    let coefficient = maxNorm / (norm + 1e-6)
    guard coefficient < 1 else { return norm }
    for name in Array(gradients.keys) {
      guard var values = gradients.removeValue(forKey: name) else { continue }
      values.withUnsafeMutableBufferPointer { buffer in
        guard let base = buffer.baseAddress else { return }
        let out = SendableMutablePointer(base)
        TrainingOps.forEachChunk(buffer.count) { range in
          for index in range { out.pointer[index] = Float(Double(out.pointer[index]) * coefficient) }
        }
      }
      gradients[name] = values
    }
    return norm
  }

  /// `Σ x²` in Double: per chunk of `TrainingOps.chunkLength`, then the chunks in order.
  static func sumOfSquares(_ values: [Float]) -> Double {
    let chunk = TrainingOps.chunkLength
    var partial = [Double](repeating: 0, count: (values.count + chunk - 1) / chunk)
    values.withUnsafeBufferPointer { values in
      partial.withUnsafeMutableBufferPointer { buffer in
        guard let base = buffer.baseAddress else { return }
        let out = SendableMutablePointer(base)
        TrainingOps.forEachChunk(values.count) { range in
          var sum: Double = 0
          for index in range {
            let value = Double(values[index])
            sum += value * value
            if (index + 1) % chunk == 0 || index + 1 == range.upperBound {
              out.pointer[index / chunk] = sum
              sum = 0
            }
          }
        }
      }
    }
    return partial.reduce(0, +)
  }
}
