import QCompute

/// One decoder layer of any registered family (RMSNorm, RoPE attention with GQA, causal mask and
/// optional q/k/v biases, gated MLP, and what the `DecoderArchitecture` adds) as a
/// `ReconstructableBlock`, so a rounding optimiser can fit its linear weights (seven, or Phi-3's
/// four with q/k/v and gate/up fused, as the checkpoint stores them) to the full-precision
/// layer's output.
///
/// Forward and backward are `DecoderGraph`'s per-layer passes, so the block computes exactly what
/// the training decoder computes for that layer.
public struct DecoderBlock: ReconstructableBlock {
  var core: DecoderBlockCore<Float>

  public var width: Int { core.graph.configuration.hiddenSize }
  public var linearShapes: [String: [Int]] { core.linearShapes }

  /// The layer's parameters by checkpoint name, all starting with `layerPrefix`
  /// (e.g. `model.layers.3.`, whose number picks the layer's attention settings): the
  /// architecture's norms, the seven linear weights and any q/k/v biases.
  /// - Throws: `TrainingError.unknownParameter` for a missing weight, `.shapeMismatch` for one of
  ///   the wrong size, `.invalidInput` for a prefix without a layer number when layers differ.
  public init(configuration: DecoderConfiguration, layerPrefix: String, parameters: [String: [Float]]) throws {
    core = try DecoderBlockCore(configuration: configuration, layerPrefix: layerPrefix, parameters: parameters)
  }

  /// Block `block` of `model`, its packed weights dequantized, named with `prefix` before
  /// `model.layers.N.` as the checkpoint names them.
  /// - Throws: `TrainingError.invalidInput` for a block the model does not have.
  public init(model: DecoderModel, block: Int, prefix: String = "") throws {
    guard model.layers.indices.contains(block) else {
      throw TrainingError.invalidInput(
        operation: "DecoderBlock", reason: "block \(block) is outside the model's \(model.layers.count) blocks")
    }
    let layer = model.layers[block]
    let p = "\(prefix)model.layers.\(block)."
    let a = model.configuration.architecture
    var parameters: [String: [Float]] = [
      p + "input_layernorm.weight": layer.inputNorm,
      p + a.mlpInputNormSuffix: layer.postAttentionNorm,
    ]
    let optional: [(BlockNorm, [Float]?)] = [
      (.attentionOutput, layer.attentionOutputNorm), (.mlpOutput, layer.mlpOutputNorm),
      (.query, layer.queryNorm), (.key, layer.keyNorm),
    ]
    for case (let norm, let values?) in optional {
      if let suffix = a.normSuffix(norm) { parameters[p + suffix] = values }
    }
    for linear in a.storedLinears {
      parameters[p + linear.module + ".weight"] = RowStack.join(linear.slots.map { layer[$0].denseValues() })
    }
    if let bias = layer.queryBias { parameters[p + "self_attn.q_proj.bias"] = bias }
    if let bias = layer.keyBias { parameters[p + "self_attn.k_proj.bias"] = bias }
    if let bias = layer.valueBias { parameters[p + "self_attn.v_proj.bias"] = bias }
    try self.init(configuration: model.configuration, layerPrefix: p, parameters: parameters)
  }

  public func linearWeight(named name: String) throws -> [Float] {
    guard core.linearShapes[name] != nil else { throw TrainingError.unknownParameter(name: name) }
    return try core.graph.tensor(name)
  }

  public func output(input: [Float], lengths: [Int], replacing: [String: [Float]]) throws -> [Float] {
    try core.forward(input: input, lengths: lengths, replacing: replacing).output
  }

  public func reconstruction(
    _ batch: BlockBatch, replacing: [String: [Float]]
  ) throws -> (loss: Float, gradients: [String: [Float]]) {
    try core.reconstruction(input: batch.input, target: batch.target, lengths: batch.lengths, replacing: replacing)
  }
}

/// `DecoderBlock`'s passes in any training scalar, so the Double path can be checked against
/// finite differences.
struct DecoderBlockCore<T: TrainingScalar>: Sendable {
  var graph: DecoderGraph<T>
  var layerPrefix: String
  /// The block's index in the model, whose attention settings (window, rope) apply.
  var layerIndex: Int
  var linearShapes: [String: [Int]]

  init(configuration c: DecoderConfiguration, layerPrefix: String, parameters: [String: [T]]) throws {
    let p = layerPrefix
    // The number after `layers.` in the prefix, e.g. 3 in `model.layers.3.`.
    let parts = layerPrefix.split(separator: ".")
    let number = parts.indices.dropFirst().last { parts[$0 - 1] == "layers" }.flatMap { Int(parts[$0]) }
    if number == nil, !c.architecture.layers.isEmpty {
      throw TrainingError.invalidInput(
        operation: "DecoderBlock", reason: "prefix '\(layerPrefix)' names no layer, whose settings differ by layer")
    }
    layerIndex = number ?? 0
    let queryWidth = c.headCount * c.headDimension
    let keyWidth = c.keyValueHeadCount * c.headDimension
    var shapes: [String: [Int]] = [:]
    for norm in BlockNorm.allCases {
      if let suffix = c.architecture.normSuffix(norm) { shapes[p + suffix] = [c.width(of: norm)] }
    }
    var linears: [String: [Int]] = [:]
    for linear in c.architecture.storedLinears {
      let (rows, columns) = linear.shape(c)
      linears[p + linear.module + ".weight"] = [rows, columns]
    }
    shapes.merge(linears) { $1 }
    for (name, width) in [("q_proj", queryWidth), ("k_proj", keyWidth), ("v_proj", keyWidth)]
    where parameters[p + "self_attn.\(name).bias"] != nil {
      shapes[p + "self_attn.\(name).bias"] = [width]
    }
    for (name, shape) in shapes {
      guard let values = parameters[name] else { throw TrainingError.unknownParameter(name: name) }
      guard values.count == shape.reduce(1, *) else {
        throw TrainingError.shapeMismatch(
          operation: "DecoderBlock", detail: "'\(name)' has \(values.count) values, not \(shape)")
      }
    }
    graph = DecoderGraph(
      configuration: c, tensors: parameters.filter { shapes[$0.key] != nil }, shapes: shapes)
    self.layerPrefix = layerPrefix
    self.linearShapes = linears
  }

  /// The graph with `replacing`'s weights in place of the block's own.
  func replaced(_ replacing: [String: [T]]) throws -> DecoderGraph<T> {
    var copy = graph
    for (name, values) in replacing {
      guard let shape = linearShapes[name] else { throw TrainingError.unknownParameter(name: name) }
      guard values.count == shape[0] * shape[1] else {
        throw TrainingError.shapeMismatch(
          operation: "DecoderBlock", detail: "'\(name)' is replaced by \(values.count) values, not \(shape)")
      }
      copy.tensors[name] = values
    }
    return copy
  }

  func forward(input: [T], lengths: [Int], replacing: [String: [T]]) throws
    -> (output: [T], graph: DecoderGraph<T>, layer: DecoderGraph<T>.LayerCache, cache: DecoderGraph<T>.Cache)
  {
    let c = graph.configuration
    let rows = lengths.reduce(0, +)
    guard !lengths.isEmpty, !lengths.contains(where: { $0 <= 0 }) else {
      throw TrainingError.invalidInput(operation: "DecoderBlock", reason: "a sequence is empty")
    }
    guard input.count == rows * c.hiddenSize else {
      throw TrainingError.shapeMismatch(
        operation: "DecoderBlock", detail: "\(input.count) inputs for \(rows) rows of \(c.hiddenSize)")
    }
    let graph = try replaced(replacing)
    var cache = DecoderGraph<T>.Cache(
      tokens: [], lengths: lengths, layers: [], finalInput: [], finalInverseRMS: [], finalNormed: [],
      effective: [:], passes: [:])
    var x = input
    let layer = try graph.forwardLayer(
      index: layerIndex, prefix: layerPrefix, x: &x, rows: rows, lengths: lengths, cache: &cache)
    return (x, graph, layer, cache)
  }

  /// `mean((output - target)²)` and its gradient with respect to every weight in `replacing`.
  func reconstruction(
    input: [T], target: [T], lengths: [Int], replacing: [String: [T]]
  ) throws -> (loss: T, gradients: [String: [T]]) {
    let (output, graph, layer, cache) = try forward(input: input, lengths: lengths, replacing: replacing)
    guard target.count == output.count else {
      throw TrainingError.shapeMismatch(
        operation: "DecoderBlock", detail: "\(target.count) targets for \(output.count) outputs")
    }
    let count = T(output.count)
    var loss: T = 0
    var dx = [T](repeating: 0, count: output.count)
    for index in output.indices {
      let difference = output[index] - target[index]
      loss += difference * difference
      dx[index] = 2 * difference / count
    }
    var gradients: [String: [T]] = [:]
    try graph.backwardLayer(
      index: layerIndex, prefix: layerPrefix, layer: layer, dx: &dx, rows: lengths.reduce(0, +), cache: cache,
      trainable: Set(replacing.keys), gradients: &gradients)
    return (loss / count, gradients)
  }
}
