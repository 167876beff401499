import QFormats

/// How rotary frequencies are stretched for contexts longer than training (`rope_scaling`).
public enum RopeScaling: Sendable, Equatable {
  case none
  /// Positions divided by `factor` (`type: linear`).
  case linear(factor: Double)
  /// Llama 3.1's per-frequency blend of scaled and unscaled wavelengths.
  case llama3(factor: Double, lowFrequencyFactor: Double, highFrequencyFactor: Double, originalContext: Int)
  /// Dynamic NTK: the base grows once the sequence exceeds the trained context.
  case dynamic(factor: Double, originalContext: Int)
  /// LongRoPE (Phi-3's `longrope`, once `su`): each frequency divided by its own factor, the long
  /// ones once the sequence exceeds the trained context, and cos and sin multiplied by
  /// `attentionFactor`.
  case longrope(shortFactors: [Double], longFactors: [Double], originalContext: Int, attentionFactor: Double)
}

/// The shape of a decoder-only language model, read from its `config.json`.
public struct DecoderConfiguration: Sendable, Equatable {
  public var vocabularySize: Int
  public var hiddenSize: Int
  public var layerCount: Int
  public var headCount: Int
  public var keyValueHeadCount: Int
  public var headDimension: Int
  public var intermediateSize: Int
  public var normEpsilon: Float
  public var ropeTheta: Double
  public var ropeScaling: RopeScaling
  public var tiedEmbeddings: Bool
  /// The positions the model was trained for (`max_position_embeddings`), when the config says.
  public var maxPositionEmbeddings: Int? = nil
  /// The family the config's `model_type` names; Llama for a configuration built in code.
  public var family: DecoderFamily = .llama
  /// What the family's block computes beyond Llama's; Llama's block by default.
  public var architecture = DecoderArchitecture()

  /// Reads the language model's settings; a multimodal config's `text_config` is used when present.
  /// - Throws: `EngineError.unsupportedModelType` for a `model_type` the engine does not
  ///   implement, `EngineError.missingConfig` for an absent size, `DecoderError.invalidConfig`
  ///   for values that do not fit together.
  public init(_ config: ModelConfig) throws {
    family = try DecoderFamily(config)
    var text = config.textConfig ?? config
    // A wrapper's dtype holds for its text model when the text_config does not repeat it.
    text.torchDType = text.torchDType ?? config.torchDType
    let location = config.location
    func require(_ value: Int?, _ key: String) throws -> Int {
      guard let value else { throw EngineError.missingConfig(location: location, key: key) }
      guard value > 0 else {
        throw DecoderError.invalidConfig(location: location, key: key, reason: "is \(value), not positive")
      }
      return value
    }
    vocabularySize = try require(text.vocabSize, "vocab_size")
    hiddenSize = try require(text.hiddenSize, "hidden_size")
    layerCount = try require(text.numHiddenLayers, "num_hidden_layers")
    headCount = try require(text.numAttentionHeads, "num_attention_heads")
    keyValueHeadCount = try require(text.numKeyValueHeads ?? text.numAttentionHeads, "num_key_value_heads")
    headDimension = try require(text.headDim ?? hiddenSize / headCount, "head_dim")
    intermediateSize = try require(text.intermediateSize, "intermediate_size")
    guard headCount % keyValueHeadCount == 0 else {
      throw DecoderError.invalidConfig(
        location: location, key: "num_key_value_heads",
        reason: "is \(keyValueHeadCount), which does not divide \(headCount) attention heads")
    }
    guard headDimension % 2 == 0 else {
      throw DecoderError.invalidConfig(location: location, key: "head_dim", reason: "is \(headDimension), not even")
    }
    let epsilon = text.raw["rms_norm_eps"]?.doubleValue ?? 1e-6
    normEpsilon = Float(epsilon)
    tiedEmbeddings = text.tieWordEmbeddings ?? false
    let rope = try Self.rope(text, layerType: "full_attention", location: location)
    ropeTheta = rope.theta
    ropeScaling = rope.scaling
    maxPositionEmbeddings = text.maxPositionEmbeddings.flatMap { $0 > 0 ? $0 : nil }
    architecture = try family.architecture(text, configuration: self, location: location)
    if case .longrope(let short, let long, _, _) = ropeScaling, short.count != headDimension / 2 || long.count != headDimension / 2 {
      throw DecoderError.invalidConfig(
        location: location, key: "rope_scaling.short_factor",
        reason: "and long_factor have \(short.count) and \(long.count) entries, not head_dim / 2 = \(headDimension / 2)")
    }
  }

  /// The rope of layers of `layerType` (`full_attention`, `sliding_attention`): from
  /// `rope_parameters` as transformers 5 writes it (flat, or one entry per layer type), else from
  /// `rope_theta` and `rope_scaling`.
  static func rope(_ text: ModelConfig, layerType: String, location: String) throws -> DecoderArchitecture.Rope {
    let trainedContext = text.maxPositionEmbeddings ?? 0
    // Phi-3 keeps LongRoPE's trained context beside the rope entry, at the top level.
    func withOriginalContext(_ entry: JSONValue?) -> JSONValue? {
      guard var members = entry?.objectValue, members["original_max_position_embeddings"] == nil,
        let original = text.raw["original_max_position_embeddings"]
      else { return entry }
      members["original_max_position_embeddings"] = original
      return .object(members)
    }
    guard let parameters = text.raw["rope_parameters"]?.objectValue else {
      return .init(
        theta: text.ropeTheta ?? 10_000,
        scaling: try scaling(withOriginalContext(text.ropeScaling), trainedContext: trainedContext, location: location))
    }
    let perType = parameters["full_attention"] != nil || parameters["sliding_attention"] != nil
    let entry = withOriginalContext(perType ? parameters[layerType] ?? parameters["full_attention"] : .object(parameters))
    return .init(
      theta: entry?["rope_theta"]?.doubleValue ?? text.ropeTheta ?? 10_000,
      scaling: try scaling(entry, trainedContext: trainedContext, location: location))
  }

  /// The layer types of `layer_types`, when the config lists one per layer.
  static func layerTypes(_ text: ModelConfig, count: Int, location: String) throws -> [String]? {
    guard let list = text.raw["layer_types"]?.arrayValue else { return nil }
    let types = list.compactMap(\.stringValue)
    guard types.count == list.count, types.count >= count else {
      throw DecoderError.invalidConfig(
        location: location, key: "layer_types", reason: "has \(list.count) entries, expected \(count) strings")
    }
    return Array(types.prefix(count))
  }

  public init(
    vocabularySize: Int, hiddenSize: Int, layerCount: Int, headCount: Int, keyValueHeadCount: Int,
    headDimension: Int, intermediateSize: Int, normEpsilon: Float = 1e-5, ropeTheta: Double = 10_000,
    ropeScaling: RopeScaling = .none, tiedEmbeddings: Bool = true
  ) {
    self.vocabularySize = vocabularySize
    self.hiddenSize = hiddenSize
    self.layerCount = layerCount
    self.headCount = headCount
    self.keyValueHeadCount = keyValueHeadCount
    self.headDimension = headDimension
    self.intermediateSize = intermediateSize
    self.normEpsilon = normEpsilon
    self.ropeTheta = ropeTheta
    self.ropeScaling = ropeScaling
    self.tiedEmbeddings = tiedEmbeddings
  }

  static func scaling(_ value: JSONValue?, trainedContext: Int, location: String) throws -> RopeScaling {
    guard let value, let members = value.objectValue else { return .none }
    let kind = members["rope_type"]?.stringValue ?? members["type"]?.stringValue ?? "default"
    func number(_ key: String) throws -> Double {
      guard let number = members[key]?.doubleValue else {
        throw EngineError.missingConfig(location: location, key: "rope_scaling.\(key)")
      }
      return number
    }
    switch kind {
    case "default": return .none
    case "linear": return .linear(factor: try number("factor"))
    case "dynamic":
      return .dynamic(
        factor: try number("factor"),
        originalContext: members["original_max_position_embeddings"]?.intValue ?? trainedContext)
    case "llama3":
      return .llama3(
        factor: try number("factor"), lowFrequencyFactor: try number("low_freq_factor"),
        highFrequencyFactor: try number("high_freq_factor"),
        originalContext: Int(try number("original_max_position_embeddings")))
    case "longrope", "su":
      return try longrope(members, trainedContext: trainedContext, location: location)
    default:
      throw DecoderError.invalidConfig(location: location, key: "rope_scaling.rope_type", reason: "is '\(kind)', not supported")
    }
  }
}
