import QFormats

extension DecoderFamily {
  /// Gemma 3's text model: Gemma 2's block without soft-capping by default, plus `(1 + w)` q/k
  /// norms, and local layers with their own rope base.
  ///
  /// Layer kinds come from `layer_types`, else from `sliding_window_pattern` (every n-th layer
  /// global). Local layers take `rope_parameters.sliding_attention` or `rope_local_base_freq`,
  /// unscaled; global layers `rope_parameters.full_attention` or `rope_theta` and `rope_scaling`.
  static func gemma3Architecture(_ text: ModelConfig, configuration c: DecoderConfiguration, location: String) throws
    -> DecoderArchitecture
  {
    var architecture = try gemmaArchitecture(text, configuration: c, location: location)
    architecture.activation = try activation(text, keys: ["hidden_activation", "hidden_act"], location: location)
    architecture.queryKeyNorms = true
    architecture.sandwichNorms = true
    architecture.attentionScale = try queryScale(text, location: location)
    architecture.attentionSoftcap = try softcap(text, "attn_logit_softcapping", location: location)
    architecture.finalSoftcap = try softcap(text, "final_logit_softcapping", location: location)
    let pattern = text.raw["sliding_window_pattern"]?.intValue ?? text.raw["_sliding_window_pattern"]?.intValue ?? 6
    guard pattern > 0 else {
      throw DecoderError.invalidConfig(location: location, key: "sliding_window_pattern", reason: "is \(pattern), not positive")
    }
    let global = try DecoderConfiguration.rope(text, layerType: "full_attention", location: location)
    var local = try DecoderConfiguration.rope(text, layerType: "sliding_attention", location: location)
    if text.raw["rope_parameters"]?.objectValue == nil {
      local = .init(theta: text.raw["rope_local_base_freq"]?.doubleValue ?? 10_000)
    }
    architecture.layers = try gemmaLayers(
      text, configuration: c, location: location, local: local, global: global,
      isSliding: { ($0 + 1) % pattern != 0 })
    return architecture
  }
}
