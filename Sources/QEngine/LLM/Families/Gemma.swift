import QFormats

extension DecoderFamily {
  /// Gemma (1): Llama's block with GELU, `(1 + w)` norms and the embedding scaled by
  /// sqrt(hidden) in the checkpoint's dtype, as transformers multiplies in it. Gemma 2 and 3
  /// build on this block.
  static func gemmaArchitecture(_ text: ModelConfig, configuration c: DecoderConfiguration, location: String) throws
    -> DecoderArchitecture
  {
    var architecture = DecoderArchitecture()
    // Released Gemma configs say `gelu` and mean the tanh form, as transformers reads them.
    architecture.activation = try activation(text, keys: ["hidden_act"], legacyGelu: true, location: location)
    architecture.normWeightOffset = 1
    let scale = Float(c.hiddenSize).squareRoot()
    architecture.embeddingScale =
      switch text.torchDType {
      case "bfloat16": Float(bitPattern: (scale.bitPattern &+ 0x7FFF &+ ((scale.bitPattern >> 16) & 1)) & 0xFFFF_0000)
      case "float16": Float(Float16(scale))
      default: scale
      }
    return architecture
  }

  /// The activation the first of `keys` present names; GELU-tanh when none is, or when it is
  /// `gelu` and `legacyGelu` says that means the tanh form.
  static func activation(
    _ text: ModelConfig, keys: [String], legacyGelu: Bool = false, location: String
  ) throws -> DecoderArchitecture.Activation {
    guard let key = keys.first(where: { text.raw[$0]?.stringValue != nil }), let name = text.raw[key]?.stringValue else {
      return .geluTanh
    }
    switch name {
    case "gelu_pytorch_tanh", "gelu_new", "gelu_fast": return .geluTanh
    case "gelu" where legacyGelu: return .geluTanh
    case "silu", "swish": return .silu
    default:
      throw DecoderError.invalidConfig(location: location, key: key, reason: "is '\(name)', not a supported activation")
    }
  }

  /// `query_pre_attn_scalar^-1/2`, or `nil` when the config leaves it out.
  static func queryScale(_ text: ModelConfig, location: String) throws -> Float? {
    guard let scalar = text.raw["query_pre_attn_scalar"]?.doubleValue else { return nil }
    guard scalar > 0 else {
      throw DecoderError.invalidConfig(location: location, key: "query_pre_attn_scalar", reason: "is \(scalar), not positive")
    }
    return Float(1 / scalar.squareRoot())
  }

  /// Each layer's kind, from `layer_types` or else `pattern(index)`, with the sliding window
  /// (`sliding_window`, 4096 when absent) on the sliding ones and each kind's rope.
  static func gemmaLayers(
    _ text: ModelConfig, configuration c: DecoderConfiguration, location: String,
    local: DecoderArchitecture.Rope, global: DecoderArchitecture.Rope, isSliding pattern: (Int) -> Bool
  ) throws -> [DecoderArchitecture.LayerAttention] {
    let window = text.raw["sliding_window"]?.intValue ?? 4096
    guard window > 0 else {
      throw DecoderError.invalidConfig(location: location, key: "sliding_window", reason: "is \(window), not positive")
    }
    let types =
      try DecoderConfiguration.layerTypes(text, count: c.layerCount, location: location)
      ?? (0..<c.layerCount).map { pattern($0) ? "sliding_attention" : "full_attention" }
    return try types.map { type in
      switch type {
      case "sliding_attention": .init(slidingWindow: window, rope: local)
      case "full_attention": .init(rope: global)
      default:
        throw DecoderError.invalidConfig(location: location, key: "layer_types", reason: "has '\(type)', not a Gemma layer type")
      }
    }
  }

  /// A positive soft-capping value of `key`, or `nil` when the config leaves it out or null.
  static func softcap(_ text: ModelConfig, _ key: String, location: String) throws -> Float? {
    guard let value = text.raw[key], !value.isNull else { return nil }
    guard let cap = value.doubleValue, cap > 0 else {
      throw DecoderError.invalidConfig(location: location, key: key, reason: "is not a positive number")
    }
    return Float(cap)
  }
}
