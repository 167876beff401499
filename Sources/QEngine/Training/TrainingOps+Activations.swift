/// The gated MLP's activations and Gemma 2's soft-capping, forward and backward.
extension TrainingOps {
  /// `act(gate) * up` for the architecture's activation.
  static func gatedActivation<T: TrainingScalar>(
    gate: [T], up: [T], _ activation: DecoderArchitecture.Activation
  ) -> [T] {
    switch activation {
    case .silu: return swiGLU(gate: gate, up: up)
    case .geluTanh:
      var out = [T](repeating: 0, count: gate.count)
      for index in gate.indices { out[index] = geluTanh(gate[index]).value * up[index] }
      return out
    }
  }

  /// Gradients of `gatedActivation` with respect to `gate` and `up`.
  static func gatedActivationBackward<T: TrainingScalar>(
    _ dy: [T], gate: [T], up: [T], _ activation: DecoderArchitecture.Activation
  ) -> (gate: [T], up: [T]) {
    switch activation {
    case .silu: return swiGLUBackward(dy, gate: gate, up: up)
    case .geluTanh:
      var dGate = [T](repeating: 0, count: gate.count)
      var dUp = dGate
      for index in gate.indices {
        let (value, derivative) = geluTanh(gate[index])
        dUp[index] = dy[index] * value
        dGate[index] = dy[index] * up[index] * derivative
      }
      return (dGate, dUp)
    }
  }

  /// `gelu(x) = x/2 (1 + tanh(u))`, `u = √(2/π) (x + 0.044715 x³)`, and its derivative
  /// `(1 + t)/2 + x/2 (1 - t²) √(2/π) (1 + 3 · 0.044715 x²)`.
  static func geluTanh<T: TrainingScalar>(_ x: T) -> (value: T, derivative: T) {
    let k = T(VisionTrainingOps.tanhGELUScale)
    let c = T(VisionTrainingOps.tanhGELUCubic)
    let t = tanh(k * (x + c * x * x * x))
    let value = T(0.5) * x * (1 + t)
    let derivative = T(0.5) * (1 + t) + T(0.5) * x * (1 - t * t) * k * (1 + 3 * c * x * x)
    return (value, derivative)
  }

  static func tanh<T: TrainingScalar>(_ x: T) -> T {
    // 1 - 2 / (e^{2x} + 1) stays finite for large |x|.
    1 - 2 / (T.exp(2 * x) + 1)
  }

  /// `cap tanh(x / cap)` in place.
  static func softcap<T: TrainingScalar>(_ values: inout [T], cap: T) {
    for index in values.indices { values[index] = cap * tanh(values[index] / cap) }
  }

  /// The backward of `softcap` from its outputs `y`: `dx = dy (1 - (y / cap)²)`, in place of `dy`.
  static func softcapBackward<T: TrainingScalar>(_ dy: inout [T], outputs y: [T], cap: T) {
    for index in dy.indices {
      let t = y[index] / cap
      dy[index] *= 1 - t * t
    }
  }
}
