import QFormats

extension DecoderFamily {
  /// Gemma 2: Gemma's block with four norms per block, queries scaled by
  /// `query_pre_attn_scalar^-1/2`, soft-capped attention scores and logits, and sliding-window
  /// layers alternating with global ones (from `layer_types`, else even layers slide), one rope.
  static func gemma2Architecture(_ text: ModelConfig, configuration c: DecoderConfiguration, location: String) throws
    -> DecoderArchitecture
  {
    var architecture = try gemmaArchitecture(text, configuration: c, location: location)
    architecture.activation = try activation(text, keys: ["hidden_activation", "hidden_act"], location: location)
    architecture.sandwichNorms = true
    architecture.attentionScale = try queryScale(text, location: location)
    architecture.attentionSoftcap = try softcap(text, "attn_logit_softcapping", location: location)
    architecture.finalSoftcap = try softcap(text, "final_logit_softcapping", location: location)
    let rope = try DecoderConfiguration.rope(text, layerType: "full_attention", location: location)
    architecture.layers = try gemmaLayers(
      text, configuration: c, location: location, local: rope, global: rope, isSliding: { $0 % 2 == 0 })
    return architecture
  }
}
