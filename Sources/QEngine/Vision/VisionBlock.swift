/// One block of a vision tower as a `ReconstructableBlock`: its six linears (q, k, v, o, fc1,
/// fc2) can be swapped for candidate weights, and the reconstruction loss has an exact gradient
/// with respect to them, so a rounding optimiser can fit them block by block.
public struct VisionBlock: ReconstructableBlock {
  /// The block's index in its tower.
  public let index: Int
  /// The checkpoint name of each linear weight (with the tower's prefix).
  public let names: [VisionLinearSlot: String]
  let graph: VisionBlockGraph<Float>
  let slotsByName: [String: VisionLinearSlot]

  init(index: Int, names: [VisionLinearSlot: String], graph: VisionBlockGraph<Float>) {
    self.index = index
    self.names = names
    self.graph = graph
    var slots: [String: VisionLinearSlot] = [:]
    for (slot, name) in names { slots[name] = slot }
    slotsByName = slots
  }

  public var width: Int { graph.width }

  public var linearShapes: [String: [Int]] {
    var shapes: [String: [Int]] = [:]
    for (slot, name) in names {
      let (outputs, inputs) = graph.shape(of: slot)
      shapes[name] = [outputs, inputs]
    }
    return shapes
  }

  public func linearWeight(named name: String) throws -> [Float] {
    guard let slot = slotsByName[name], let weight = graph.weights[slot] else {
      throw TrainingError.unknownParameter(name: name)
    }
    return weight
  }

  func slots(_ replacing: [String: [Float]]) throws -> [VisionLinearSlot: [Float]] {
    var bySlot: [VisionLinearSlot: [Float]] = [:]
    for (name, weight) in replacing {
      guard let slot = slotsByName[name] else { throw TrainingError.unknownParameter(name: name) }
      bySlot[slot] = weight
    }
    return bySlot
  }

  public func output(input: [Float], lengths: [Int], replacing: [String: [Float]]) throws -> [Float] {
    try graph.forward(input, lengths: lengths, replacing: try slots(replacing), keepCache: false).output
  }

  /// What the linear in `slot` multiplies on this input (`[rows, inputs]`), with `replacing` in
  /// effect for the linears before it: the rows of its calibration Gram matrix.
  public func linearInput(
    of slot: VisionLinearSlot, input: [Float], lengths: [Int], replacing: [String: [Float]]
  ) throws -> [Float] {
    let cache = try graph.forward(input, lengths: lengths, replacing: try slots(replacing)).cache
    switch slot {
    case .query, .key, .value: return cache.normed1
    case .output: return cache.attention
    case .fc1: return cache.normed2
    case .fc2: return cache.activated
    }
  }

  public func reconstruction(
    _ batch: BlockBatch, replacing: [String: [Float]]
  ) throws -> (loss: Float, gradients: [String: [Float]]) {
    let bySlot = try slots(replacing)
    let (output, cache) = try graph.forward(batch.input, lengths: batch.lengths, replacing: bySlot)
    guard batch.target.count == output.count, !output.isEmpty else {
      throw TrainingError.shapeMismatch(
        operation: "vision block reconstruction", detail: "\(batch.target.count) targets for \(output.count) outputs")
    }
    var loss: Double = 0
    var dOutput = [Float](repeating: 0, count: output.count)
    let factor = 2 / Float(output.count)
    for index in output.indices {
      let difference = output[index] - batch.target[index]
      loss += Double(difference * difference)
      dOutput[index] = factor * difference
    }
    let (_, gradients) = try graph.backward(dOutput, cache: cache, slots: Set(bySlot.keys))
    var byName: [String: [Float]] = [:]
    for (slot, gradient) in gradients {
      if let name = names[slot] { byName[name] = gradient }
    }
    return (Float(loss / Double(output.count)), byName)
  }
}

extension VisionEncoder {
  /// The checkpoint names of block `index`'s linear weights, after `prefix` (the one the tower
  /// was loaded with).
  public func linearNames(block index: Int, prefix: String) -> [VisionLinearSlot: String] {
    let names: [VisionLinearSlot: String]
    switch config.kind {
    case .dinov2:
      let b = "\(prefix)encoder.layer.\(index)."
      names = [
        .query: b + "attention.attention.query", .key: b + "attention.attention.key",
        .value: b + "attention.attention.value", .output: b + "attention.output.dense", .fc1: b + "mlp.fc1",
        .fc2: b + "mlp.fc2",
      ]
    case .internVL:
      let b = "\(prefix)encoder.layer.\(index)."
      names = [
        .query: b + "attention.q_proj", .key: b + "attention.k_proj", .value: b + "attention.v_proj",
        .output: b + "attention.projection_layer", .fc1: b + "mlp.fc1", .fc2: b + "mlp.fc2",
      ]
    case .clip, .siglip:
      let b = "\(prefix)encoder.layers.\(index)."
      names = [
        .query: b + "self_attn.q_proj", .key: b + "self_attn.k_proj", .value: b + "self_attn.v_proj",
        .output: b + "self_attn.out_proj", .fc1: b + "mlp.fc1", .fc2: b + "mlp.fc2",
      ]
    }
    return names.mapValues { $0 + ".weight" }
  }

  public var blockCount: Int { blocks.count }

  /// Block `index` as a `ReconstructableBlock`, its weights named under `prefix`.
  /// - Throws: `TrainingError.invalidInput` for an index outside the tower.
  public func block(at index: Int, prefix: String) throws -> VisionBlock {
    guard blocks.indices.contains(index) else {
      throw TrainingError.invalidInput(operation: "vision block", reason: "index \(index) of \(blocks.count) blocks")
    }
    let block = blocks[index]
    let graph = VisionBlockGraph<Float>(
      width: config.hiddenSize, intermediate: config.intermediateSize, heads: config.headCount,
      epsilon: config.layerNormEpsilon, activation: config.activation, norm1Weight: block.norm1.weight,
      norm1Bias: block.norm1.bias, norm2Weight: block.norm2.weight, norm2Bias: block.norm2.bias,
      weights: [
        .query: block.query.weight, .key: block.key.weight, .value: block.value.weight,
        .output: block.output.weight, .fc1: block.fc1.weight, .fc2: block.fc2.weight,
      ],
      biases: [
        .query: block.query.bias, .key: block.key.bias, .value: block.value.bias, .output: block.output.bias,
        .fc1: block.fc1.bias, .fc2: block.fc2.bias,
      ].compactMapValues { $0 },
      scale1: block.scale1, scale2: block.scale2)
    return VisionBlock(index: index, names: linearNames(block: index, prefix: prefix), graph: graph)
  }
}
