/// The six linears of a ViT block, in the order the forward pass uses them.
public enum VisionLinearSlot: String, Sendable, CaseIterable, Hashable {
  case query, key, value, output, fc1, fc2
}

/// One pre-norm ViT block (DINOv2, CLIP, SigLIP) in one element type, forward and backward:
/// `y = x + s1 ∘ o(attn(LN1(x)))`, `z = y + s2 ∘ fc2(act(fc1(LN2(y))))`, where `s1`/`s2` are
/// DINOv2's layer scales (absent elsewhere).
struct VisionBlockGraph<T: VisionTrainingScalar>: Sendable {
  var width: Int
  var intermediate: Int
  var heads: Int
  var epsilon: Float
  var activation: VisionConfig.Activation
  var norm1Weight: [T]
  var norm1Bias: [T]
  var norm2Weight: [T]
  var norm2Bias: [T]
  var weights: [VisionLinearSlot: [T]]
  var biases: [VisionLinearSlot: [T]]
  var scale1: [T]?
  var scale2: [T]?

  var headDimension: Int { width / heads }

  /// `[outputs, inputs]` of a slot.
  func shape(of slot: VisionLinearSlot) -> (outputs: Int, inputs: Int) {
    switch slot {
    case .query, .key, .value, .output: (width, width)
    case .fc1: (intermediate, width)
    case .fc2: (width, intermediate)
    }
  }

  /// Everything the backward needs from one forward.
  struct Cache: Sendable {
    var lengths: [Int] = []
    var normalized1: [T] = []
    var inverseStd1: [T] = []
    var normed1: [T] = []
    var queries: [T] = []
    var keys: [T] = []
    var values: [T] = []
    var probabilities: [[T]] = []
    var attention: [T] = []
    var normalized2: [T] = []
    var inverseStd2: [T] = []
    var normed2: [T] = []
    var preActivation: [T] = []
    var activated: [T] = []
    var effective: [VisionLinearSlot: [T]] = [:]
  }

  func linear(_ x: [T], rows: Int, slot: VisionLinearSlot, weight: [T]) throws -> [T] {
    let (outputs, inputs) = shape(of: slot)
    return try TrainingOps.linear(x, rows: rows, weight: weight, outputs: outputs, inputs: inputs, bias: biases[slot])
  }

  /// The block's output for images stacked as rows, with `replacing` used instead of the own
  /// weights; `keepCache` keeps what `backward` needs (the attention probabilities are the
  /// bulk: heads × length² per image).
  func forward(
    _ x: [T], lengths: [Int], replacing: [VisionLinearSlot: [T]] = [:], keepCache: Bool = true
  ) throws -> (output: [T], cache: Cache) {
    let rows = lengths.reduce(0, +)
    guard !lengths.contains(where: { $0 <= 0 }), x.count == rows * width else {
      throw TrainingError.shapeMismatch(
        operation: "vision block forward", detail: "\(x.count) values for images of \(lengths) tokens at width \(width)")
    }
    var cache = Cache()
    cache.lengths = lengths
    for slot in VisionLinearSlot.allCases {
      guard let weight = replacing[slot] ?? weights[slot] else { throw TrainingError.unknownParameter(name: slot.rawValue) }
      let (outputs, inputs) = shape(of: slot)
      guard weight.count == outputs * inputs else {
        throw TrainingError.shapeMismatch(
          operation: "vision block \(slot.rawValue)", detail: "\(weight.count) weights for [\(outputs), \(inputs)]")
      }
      cache.effective[slot] = weight
    }
    func weight(_ slot: VisionLinearSlot) -> [T] { cache.effective[slot] ?? [] }
    let (normed1, normalized1, inverse1) = VisionTrainingOps.layerNorm(
      x, rows: rows, weight: norm1Weight, bias: norm1Bias, epsilon: epsilon)
    let q = try linear(normed1, rows: rows, slot: .query, weight: weight(.query))
    let k = try linear(normed1, rows: rows, slot: .key, weight: weight(.key))
    let v = try linear(normed1, rows: rows, slot: .value, weight: weight(.value))
    let (attended, probabilities) = try VisionTrainingOps.attention(
      queries: q, keys: k, values: v, lengths: lengths, heads: heads, headDimension: headDimension,
      keepProbabilities: keepCache)
    var y = x
    VisionTrainingOps.addScaled(
      try linear(attended, rows: rows, slot: .output, weight: weight(.output)), scale: scale1, to: &y)
    let (normed2, normalized2, inverse2) = VisionTrainingOps.layerNorm(
      y, rows: rows, weight: norm2Weight, bias: norm2Bias, epsilon: epsilon)
    let pre = try linear(normed2, rows: rows, slot: .fc1, weight: weight(.fc1))
    let activated = VisionTrainingOps.activate(pre, activation)
    VisionTrainingOps.addScaled(
      try linear(activated, rows: rows, slot: .fc2, weight: weight(.fc2)), scale: scale2, to: &y)
    if keepCache {
      cache.normalized1 = normalized1
      cache.inverseStd1 = inverse1
      cache.normed1 = normed1
      cache.queries = q
      cache.keys = k
      cache.values = v
      cache.probabilities = probabilities
      cache.attention = attended
      cache.normalized2 = normalized2
      cache.inverseStd2 = inverse2
      cache.normed2 = normed2
      cache.preActivation = pre
      cache.activated = activated
    }
    return (y, cache)
  }

  /// The gradient with respect to the block input and to the weights of `slots`, from the
  /// gradient `dy` of the block output.
  func backward(
    _ dy: [T], cache: Cache, slots: Set<VisionLinearSlot>
  ) throws -> (input: [T], weights: [VisionLinearSlot: [T]]) {
    let rows = cache.lengths.reduce(0, +)
    guard dy.count == rows * width, !cache.normed1.isEmpty else {
      throw TrainingError.shapeMismatch(
        operation: "vision block backward", detail: "\(dy.count) gradients for \(rows) rows of \(width), or no cache")
    }
    var gradients: [VisionLinearSlot: [T]] = [:]
    func through(_ slot: VisionLinearSlot, _ dOut: [T], input: [T]) throws -> [T] {
      let (outputs, inputs) = shape(of: slot)
      let weight = cache.effective[slot] ?? []
      if slots.contains(slot) {
        var local = [T](repeating: 0, count: outputs * inputs)
        try TrainingOps.accumulateWeightGradient(dOut, x: input, rows: rows, outputs: outputs, inputs: inputs, into: &local)
        gradients[slot] = local
      }
      return try TrainingOps.linearInputGradient(dOut, rows: rows, weight: weight, outputs: outputs, inputs: inputs)
    }
    // MLP branch: z = y + s2 ∘ fc2(act(fc1(LN2(y)))).
    var dx = dy
    let dActivated = try through(.fc2, VisionTrainingOps.scaled(dy, by: scale2), input: cache.activated)
    let dPre = VisionTrainingOps.activationBackward(dActivated, x: cache.preActivation, activation)
    let dNormed2 = try through(.fc1, dPre, input: cache.normed2)
    TrainingOps.add(
      VisionTrainingOps.layerNormBackward(
        dNormed2, normalized: cache.normalized2, inverseStd: cache.inverseStd2, weight: norm2Weight),
      to: &dx)
    // Attention branch: y = x + s1 ∘ o(attn(LN1(x))).
    let dAttention = try through(.output, VisionTrainingOps.scaled(dx, by: scale1), input: cache.attention)
    let (dQ, dK, dV) = try VisionTrainingOps.attentionBackward(
      dAttention, queries: cache.queries, keys: cache.keys, values: cache.values, probabilities: cache.probabilities,
      lengths: cache.lengths, heads: heads, headDimension: headDimension)
    var dNormed1 = try through(.query, dQ, input: cache.normed1)
    TrainingOps.add(try through(.key, dK, input: cache.normed1), to: &dNormed1)
    TrainingOps.add(try through(.value, dV, input: cache.normed1), to: &dNormed1)
    TrainingOps.add(
      VisionTrainingOps.layerNormBackward(
        dNormed1, normalized: cache.normalized1, inverseStd: cache.inverseStd1, weight: norm1Weight),
      to: &dx)
    return (dx, gradients)
  }

  /// The same block in another element type.
  func converted<U: VisionTrainingScalar>(to type: U.Type = U.self) -> VisionBlockGraph<U> {
    func c(_ values: [T]) -> [U] { values.map { U(Double($0)) } }
    return VisionBlockGraph<U>(
      width: width, intermediate: intermediate, heads: heads, epsilon: epsilon, activation: activation,
      norm1Weight: c(norm1Weight), norm1Bias: c(norm1Bias), norm2Weight: c(norm2Weight), norm2Bias: c(norm2Bias),
      weights: weights.mapValues(c), biases: biases.mapValues(c), scale1: scale1.map(c), scale2: scale2.map(c))
  }
}
