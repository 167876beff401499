import Foundation

/// AdamW with its moments in the open, so a run can be saved and resumed.
///
/// The update is `QEngine.AdamW`'s (torch's decoupled weight decay, bias-corrected moments),
/// operation for operation; that type keeps its moments private.
struct SpeedQOptimizer: Sendable {
  var beta1 = 0.9
  var beta2 = 0.999
  var epsilon = 1e-8
  var weightDecay: Double
  /// Steps taken so far; the bias correction uses it.
  var step = 0
  var firstMoments: [String: [Float]] = [:]
  var secondMoments: [String: [Float]] = [:]

  init(weightDecay: Double) { self.weightDecay = weightDecay }

  /// Updates every parameter that has a gradient, at `learningRate`.
  mutating func update(
    _ parameters: inout [String: [Float]], gradients: [String: [Float]], learningRate: Double
  ) throws(SpeedQError) {
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
      guard let gradient = gradients[name], var values = parameters.removeValue(forKey: name),
        values.count == gradient.count
      else {
        throw .invalidInput(operation: "AdamW", reason: "gradient of '\(name)' has no parameter of its size")
      }
      var m = firstMoments.removeValue(forKey: name) ?? [Float](repeating: 0, count: values.count)
      var v = secondMoments.removeValue(forKey: name) ?? [Float](repeating: 0, count: values.count)
      for index in values.indices {
        let g = gradient[index]
        m[index] = b1 * m[index] + (1 - b1) * g
        v[index] = b2 * v[index] + (1 - b2) * g * g
        values[index] *= decay
        values[index] -= stepSize * m[index] / (v[index].squareRoot() / root2 + eps)
      }
      parameters[name] = values
      firstMoments[name] = m
      secondMoments[name] = v
    }
  }
}
