import QFormats

extension DecoderFamily {
  /// Gemma 3's text model: GELU-tanh, `(1 + w)` norms (q/k norms included), four norms per
  /// block, the embedding scaled by sqrt(hidden) in the checkpoint's dtype, queries scaled by
  /// `query_pre_attn_scalar^-1/2`, and sliding-window layers with their own rope base among
  /// global ones.
  ///
  /// Layer kinds come from `layer_types`, else from `sliding_window_pattern` (every n-th layer
  /// global). Local layers take `rope_parameters.sliding_attention` or `rope_local_base_freq`,
  /// unscaled; global layers `rope_parameters.full_attention` or `rope_theta` and `rope_scaling`.
  static func gemma3Architecture(
    _ text: ModelConfig, configuration c: DecoderConfiguration, location: String
  ) throws -> DecoderArchitecture {
    var architecture = gemmaBlock(text, configuration: c)
    architecture.queryKeyNorms = true
    architecture.sandwichNorms = true
    if let scalar = text.raw["query_pre_attn_scalar"]?.doubleValue {
      guard scalar > 0 else {
        throw DecoderError.invalidConfig(location: location, key: "query_pre_attn_scalar", reason: "is \(scalar), not positive")
      }
      architecture.attentionScale = Float(1 / scalar.squareRoot())
    }
    architecture.attentionSoftcap = try softcap(text, "attn_logit_softcapping", location: location)
    architecture.finalSoftcap = try softcap(text, "final_logit_softcapping", location: location)
    let window = text.raw["sliding_window"]?.intValue ?? 4096
    guard window > 0 else {
      throw DecoderError.invalidConfig(location: location, key: "sliding_window", reason: "is \(window), not positive")
    }
    let types: [String]
    if let listed = try DecoderConfiguration.layerTypes(text, count: c.layerCount, location: location) {
      types = listed
    } else {
      let pattern = text.raw["sliding_window_pattern"]?.intValue ?? text.raw["_sliding_window_pattern"]?.intValue ?? 6
      guard pattern > 0 else {
        throw DecoderError.invalidConfig(location: location, key: "sliding_window_pattern", reason: "is \(pattern), not positive")
      }
      types = (0..<c.layerCount).map { ($0 + 1) % pattern == 0 ? "full_attention" : "sliding_attention" }
    }
    let global = try DecoderConfiguration.rope(text, layerType: "full_attention", location: location)
    var local = try DecoderConfiguration.rope(text, layerType: "sliding_attention", location: location)
    if text.raw["rope_parameters"]?.objectValue == nil {
      local = .init(theta: text.raw["rope_local_base_freq"]?.doubleValue ?? 10_000)
    }
    architecture.layers = try types.map { type in
      switch type {
      case "sliding_attention": .init(slidingWindow: window, rope: local)
      case "full_attention": .init(rope: global)
      default:
        throw DecoderError.invalidConfig(location: location, key: "layer_types", reason: "has '\(type)', not a Gemma 3 layer type")
      }
    }
    return architecture
  }

  /// What every Gemma shares: GELU-tanh, `(1 + w)` norms and the embedding scaled by
  /// sqrt(hidden), rounded to the checkpoint's dtype as transformers multiplies in it.
  static func gemmaBlock(_ text: ModelConfig, configuration c: DecoderConfiguration) -> DecoderArchitecture {
    var architecture = DecoderArchitecture()
    architecture.activation = .geluTanh
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

  /// A positive soft-capping value of `key`, or `nil` when the config leaves it out or null.
  static func softcap(_ text: ModelConfig, _ key: String, location: String) throws -> Float? {
    guard let value = text.raw[key], !value.isNull else { return nil }
    guard let cap = value.doubleValue, cap > 0 else {
      throw DecoderError.invalidConfig(location: location, key: key, reason: "is not a positive number")
    }
    return Float(cap)
  }
}
