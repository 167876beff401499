import Foundation
import QCompute
import QFormats

/// One forward pass of a `TrainableDecoder`: the logits and the activations its backward reads.
public struct TrainingPass: Sendable {
  /// `[rows, vocabularySize]`, the sequences' rows one after another.
  public let logits: Matrix<Float>
  let cache: DecoderGraph<Float>.Cache
}

/// A decoder of any registered family held as dense Float parameters, with a forward pass that keeps its
/// activations and a manual backward pass (BLAS for every product), for fine-tuning, LoRA and
/// quantization-aware training.
///
/// Parameters carry their Hugging Face names; `trainable` chooses which get gradients.
public struct TrainableDecoder: Sendable {
  var graph: DecoderGraph<Float>
  /// The parameters `backward` returns gradients for.
  public var trainable: Set<String>

  public var configuration: DecoderConfiguration { graph.configuration }
  /// Every parameter by name (weights, biases, norms, adapters). Mutated in place, so that an
  /// optimizer step through `&parameters` does not copy every weight of the model first.
  public var parameters: [String: [Float]] {
    get { graph.tensors }
    _modify { yield &graph.tensors }
  }
  /// The shape of each parameter.
  public var shapes: [String: [Int]] { graph.shapes }
  public var adapters: [String: LoRAAdapter] { graph.adapters }

  /// A dense copy of `model`'s weights (packed weights dequantized); every parameter trainable.
  public init(model: DecoderModel) {
    let c = model.configuration
    var tensors: [String: [Float]] = [:]
    var shapes: [String: [Int]] = [:]
    func put(_ name: String, _ values: [Float], _ shape: [Int]) {
      tensors[name] = values
      shapes[name] = shape
    }
    let hidden = c.hiddenSize
    let queryWidth = c.headCount * c.headDimension
    let keyWidth = c.keyValueHeadCount * c.headDimension
    let a = c.architecture
    put("model.embed_tokens.weight", model.embedding.denseValues(), [c.vocabularySize, hidden])
    for (index, layer) in model.layers.enumerated() {
      let p = "model.layers.\(index)."
      put(p + "input_layernorm.weight", layer.inputNorm, [hidden])
      put(p + a.mlpInputNormSuffix, layer.postAttentionNorm, [hidden])
      let optional: [(BlockNorm, [Float]?)] = [
        (.attentionOutput, layer.attentionOutputNorm), (.mlpOutput, layer.mlpOutputNorm),
        (.query, layer.queryNorm), (.key, layer.keyNorm),
      ]
      for case (let norm, let values?) in optional {
        if let suffix = a.normSuffix(norm) { put(p + suffix, values, [c.width(of: norm)]) }
      }
      // As the checkpoint stores them: a fused weight's slots stacked by rows.
      for linear in a.storedLinears {
        let (rows, columns) = linear.shape(c)
        put(p + linear.module + ".weight", RowStack.join(linear.slots.map { layer[$0].denseValues() }), [rows, columns])
      }
      if let bias = layer.queryBias { put(p + "self_attn.q_proj.bias", bias, [queryWidth]) }
      if let bias = layer.keyBias { put(p + "self_attn.k_proj.bias", bias, [keyWidth]) }
      if let bias = layer.valueBias { put(p + "self_attn.v_proj.bias", bias, [keyWidth]) }
    }
    put("model.norm.weight", model.finalNorm, [hidden])
    if !model.headIsEmbedding { put("lm_head.weight", model.head.denseValues(), [c.vocabularySize, hidden]) }
    self.init(configuration: c, parameters: tensors, shapes: shapes)
  }

  /// Reads the decoder from a checkpoint (a qpack is dequantized).
  /// - Throws: what `DecoderModel.init` throws for missing or misshapen weights.
  public init(source: any TensorSource, config: ModelConfig, prefix: String = "") throws {
    self.init(model: try DecoderModel(source: source, config: config, prefix: prefix, dequantizePacks: true))
  }

  /// A decoder from named parameters as `DecoderModel` reads them (the head absent when tied).
  public init(configuration: DecoderConfiguration, parameters: [String: [Float]], shapes: [String: [Int]]) {
    graph = DecoderGraph(configuration: configuration, tensors: parameters, shapes: shapes)
    trainable = Set(parameters.keys)
  }

  /// The linear modules of layer `index` as `architecture` stores them, e.g.
  /// `model.layers.0.self_attn.q_proj`, or `model.layers.0.self_attn.qkv_proj` when fused.
  public static func linearModules(layer index: Int, architecture: DecoderArchitecture) -> [String] {
    architecture.storedLinears.map { "model.layers.\(index).\($0.module)" }
  }

  /// Adds a LoRA adapter (`scale = alpha / rank`) to every module whose name ends with one of
  /// `targets` (`q_proj`, `v_proj`, ...), A uniform in ±1/√in as PEFT's Kaiming init, B zero;
  /// afterwards only the adapters are trainable.
  /// - Throws: `TrainingError.invalidInput` when no module matches or the rank is not positive.
  public mutating func addLoRA(rank: Int, alpha: Float, targets: [String], seed: UInt64 = 0) throws {
    guard rank > 0 else { throw TrainingError.invalidInput(operation: "addLoRA", reason: "rank \(rank) is not positive") }
    var generator = SeededGenerator(seed: seed)
    var added: [String] = []
    for layer in 0..<configuration.layerCount {
      for module in Self.linearModules(layer: layer, architecture: configuration.architecture) where targets.contains(where: { module.hasSuffix($0) }) {
        guard let shape = graph.shapes[module + ".weight"], shape.count == 2 else { continue }
        let (outputs, inputs) = (shape[0], shape[1])
        let bound = 1 / Float(inputs).squareRoot()
        graph.tensors[module + ".lora_A.weight"] = (0..<(rank * inputs)).map { _ in
          Float.random(in: -bound...bound, using: &generator)
        }
        graph.tensors[module + ".lora_B.weight"] = [Float](repeating: 0, count: outputs * rank)
        graph.shapes[module + ".lora_A.weight"] = [rank, inputs]
        graph.shapes[module + ".lora_B.weight"] = [outputs, rank]
        graph.adapters[module] = LoRAAdapter(rank: rank, scale: alpha / Float(rank))
        added += [module + ".lora_A.weight", module + ".lora_B.weight"]
      }
    }
    guard !added.isEmpty else {
      throw TrainingError.invalidInput(operation: "addLoRA", reason: "no module matches \(targets)")
    }
    trainable = Set(added)
  }

  /// Makes the forward pass use `quantizer`'s grid values of the named `[out, in]` weights and the
  /// backward pass the straight-through estimator into their latent values; `nil` removes it.
  /// - Throws: `TrainingError.unknownParameter` for a name that is not a matrix of the decoder.
  public mutating func setQuantizer(_ quantizer: (any FakeQuantizer)?, for names: [String]) throws {
    for name in names {
      guard let shape = graph.shapes[name], shape.count == 2 else { throw TrainingError.unknownParameter(name: name) }
      graph.quantizers[name] = quantizer
    }
  }

  /// Runs one sequence.
  public func forward(tokens: [Int]) throws -> TrainingPass { try forward(sequences: [tokens]) }

  /// Runs a small batch of sequences (lengths may differ), each from position 0.
  /// - Throws: `TrainingError.invalidInput` for an empty sequence or a token outside the vocabulary.
  public func forward(sequences: [[Int]]) throws -> TrainingPass {
    let (logits, cache) = try graph.forward(sequences: sequences)
    return TrainingPass(
      logits: try Matrix(rows: cache.tokens.count, columns: configuration.vocabularySize, elements: logits), cache: cache)
  }

  /// Gradients of every parameter in `trainable` for a loss with `dL/dlogits = dLogits`.
  /// - Throws: `TrainingError.shapeMismatch` when `dLogits` does not match the pass's logits.
  public func backward(_ pass: TrainingPass, dLogits: [Float]) throws -> [String: [Float]] {
    try graph.backward(dLogits: dLogits, cache: pass.cache, trainable: trainable)
  }
}
