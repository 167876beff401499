import QCompute
import QFormats

/// One transformer block's weights.
struct DecoderLayer: Sendable {
  /// Norms the attention input.
  var inputNorm: [Float]
  /// Norms the MLP input (`post_attention_layernorm`, or Gemma's `pre_feedforward_layernorm`).
  var postAttentionNorm: [Float]
  /// The norms only some architectures have (`DecoderArchitecture.normName`).
  var attentionOutputNorm: [Float]? = nil
  var mlpOutputNorm: [Float]? = nil
  var queryNorm: [Float]? = nil
  var keyNorm: [Float]? = nil
  var query: LinearWeight
  var key: LinearWeight
  var value: LinearWeight
  var output: LinearWeight
  var gate: LinearWeight
  var up: LinearWeight
  var down: LinearWeight
  /// Qwen2's q/k/v biases; `nil` for Llama.
  var queryBias: [Float]?
  var keyBias: [Float]?
  var valueBias: [Float]?
}

/// A decoder-only language model of the Llama family (SmolLM2, Llama 2/3, Mistral, Qwen2),
/// held as Float32, or as packed low-bit codes when read from a qpack.
public final class DecoderModel: Sendable {
  public let configuration: DecoderConfiguration
  public let location: String
  let embedding: LinearWeight
  let layers: [DecoderLayer]
  let finalNorm: [Float]
  let head: LinearWeight
  let headIsEmbedding: Bool

  /// Loads the language model from `source`.
  ///
  /// Packed tensors of a `PackedCheckpoint` stay packed and are multiplied on the fly, unless
  /// `dequantizePacks` asks for a dense Float32 copy.
  /// - Parameters:
  ///   - prefix: Put before every tensor name: `language_model.` for a LLaVA checkpoint.
  /// - Throws: `EngineError.missingTensor` / `.unexpectedShape` for weights that do not fit the
  ///   configuration, `DecoderError` for malformed packed weights.
  public convenience init(
    source: any TensorSource, config: ModelConfig, prefix: String = "", dequantizePacks: Bool = false
  ) throws {
    try self.init(
      source: source, configuration: try DecoderConfiguration(config), prefix: prefix,
      dequantizePacks: dequantizePacks)
  }

  public init(
    source: any TensorSource, configuration: DecoderConfiguration, prefix: String = "",
    dequantizePacks: Bool = false
  ) throws {
    self.configuration = configuration
    location = source.location
    // A qpack opened as a plain file is read through its descriptions.
    var source = source
    if !(source is PackedCheckpoint), PackedCheckpoint.isPack(source) {
      source = try PackedCheckpoint(wrapping: source)
    }
    let loader = _WeightLoader(source: source, prefix: prefix, dequantizePacks: dequantizePacks)
    let c = configuration
    let hidden = c.hiddenSize
    let queryWidth = c.headCount * c.headDimension
    let keyWidth = c.keyValueHeadCount * c.headDimension
    embedding = try loader.linear("model.embed_tokens.weight", rows: c.vocabularySize, columns: hidden)
    var layers: [DecoderLayer] = []
    let a = c.architecture
    for index in 0..<c.layerCount {
      let p = "model.layers.\(index)."
      func norm(_ norm: BlockNorm) throws -> [Float]? {
        try a.normName(norm, block: index).map { try loader.vector($0, count: c.width(of: norm)) }
      }
      let attention =
        a.fusedProjections
        ? try loader.splitLinear(p + "self_attn.qkv_proj.weight", rows: [queryWidth, keyWidth, keyWidth], columns: hidden)
        : [
          try loader.linear(p + "self_attn.q_proj.weight", rows: queryWidth, columns: hidden),
          try loader.linear(p + "self_attn.k_proj.weight", rows: keyWidth, columns: hidden),
          try loader.linear(p + "self_attn.v_proj.weight", rows: keyWidth, columns: hidden),
        ]
      let gateUp =
        a.fusedProjections
        ? try loader.splitLinear(p + "mlp.gate_up_proj.weight", rows: [c.intermediateSize, c.intermediateSize], columns: hidden)
        : [
          try loader.linear(p + "mlp.gate_proj.weight", rows: c.intermediateSize, columns: hidden),
          try loader.linear(p + "mlp.up_proj.weight", rows: c.intermediateSize, columns: hidden),
        ]
      var layer =
        DecoderLayer(
          inputNorm: try loader.vector(p + "input_layernorm.weight", count: hidden),
          postAttentionNorm: try loader.vector(a.mlpInputNormName(block: index), count: hidden),
          query: attention[0], key: attention[1], value: attention[2],
          output: try loader.linear(p + "self_attn.o_proj.weight", rows: hidden, columns: queryWidth),
          gate: gateUp[0], up: gateUp[1],
          down: try loader.linear(p + "mlp.down_proj.weight", rows: hidden, columns: c.intermediateSize),
          queryBias: try loader.optionalVector(p + "self_attn.q_proj.bias", count: queryWidth),
          keyBias: try loader.optionalVector(p + "self_attn.k_proj.bias", count: keyWidth),
          valueBias: try loader.optionalVector(p + "self_attn.v_proj.bias", count: keyWidth))
      layer.attentionOutputNorm = try norm(.attentionOutput)
      layer.mlpOutputNorm = try norm(.mlpOutput)
      layer.queryNorm = try norm(.query)
      layer.keyNorm = try norm(.key)
      layers.append(layer)
    }
    self.layers = layers
    finalNorm = try loader.vector("model.norm.weight", count: hidden)
    // A tied head is usually absent from the file; when present it is used as stored.
    headIsEmbedding = !loader.has("lm_head.weight")
    head =
      headIsEmbedding
      ? embedding : try loader.linear("lm_head.weight", rows: c.vocabularySize, columns: hidden)
  }

  /// Bytes the weights occupy in memory (packed weights at their packed size).
  public var residentWeightBytes: Int {
    var total = embedding.residentBytes + finalNorm.count * 4
    if !headIsEmbedding { total += head.residentBytes }
    for layer in layers {
      for weight in [layer.query, layer.key, layer.value, layer.output, layer.gate, layer.up, layer.down] {
        total += weight.residentBytes
      }
      let optional = [layer.attentionOutputNorm, layer.mlpOutputNorm, layer.queryNorm, layer.keyNorm]
      total += (layer.inputNorm.count + layer.postAttentionNorm.count) * 4
      total += optional.reduce(0) { $0 + ($1?.count ?? 0) * 4 }
    }
    return total
  }
}

/// Reads weights by name, checking shapes against the configuration.
struct _WeightLoader {
  let source: any TensorSource
  let prefix: String
  let dequantizePacks: Bool
  let infos: [String: TensorInfo]
  let pack: PackedCheckpoint?

  init(source: any TensorSource, prefix: String, dequantizePacks: Bool) {
    self.source = source
    self.prefix = prefix
    self.dequantizePacks = dequantizePacks
    infos = Dictionary(source.tensors.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
    pack = source as? PackedCheckpoint
  }

  func has(_ name: String) -> Bool { infos[stored(name)] != nil }

  /// Where `name` is stored: under the prefix, except the head of a checkpoint that keeps its
  /// language model under `model.language_model.` (multimodal wrappers since transformers 4.52,
  /// read with the prefix `model.language_`) or `model.text_model.` (Idefics3, SmolVLM), whose
  /// `lm_head.weight` stays at the top level.
  func stored(_ name: String) -> String {
    let full = prefix + name
    if infos[full] == nil, name == "lm_head.weight", prefix.hasSuffix("_"), infos[name] != nil {
      return name
    }
    return full
  }

  func info(_ name: String, shape: [Int]) throws -> TensorInfo {
    let full = stored(name)
    guard let info = infos[full] else {
      throw EngineError.missingTensor(location: source.location, tensor: full)
    }
    guard info.shape == shape else {
      throw EngineError.unexpectedShape(location: source.location, tensor: full, expected: shape, found: info.shape)
    }
    return info
  }

  func linear(_ name: String, rows: Int, columns: Int) throws -> LinearWeight {
    let info = try info(name, shape: [rows, columns])
    if let pack, pack.packDescriptions[info.name] != nil {
      if dequantizePacks {
        return .dense(rows: rows, columns: columns, values: try pack.dequantizedFloats(of: info.name))
      }
      var weight = try QuantizedWeight(pack: pack, name: info.name)
      weight.quantizesActivations = true
      return .quantized(weight)
    }
    // 16-bit floats stay 16-bit: half the memory, and half the bytes a decoding step reads.
    if info.dtype == .f16 || info.dtype == .bf16 {
      return .half(try HalfWeight(source: source, name: info.name, rows: rows, columns: columns, dtype: info.dtype))
    }
    return .dense(rows: rows, columns: columns, values: try source.floats(of: info.name))
  }

  func vector(_ name: String, count: Int) throws -> [Float] {
    let info = try info(name, shape: [count])
    if let pack { return try pack.dequantizedFloats(of: info.name) }
    return try source.floats(of: info.name)
  }

  func optionalVector(_ name: String, count: Int) throws -> [Float]? {
    has(name) ? try vector(name, count: count) : nil
  }
}
