/// Checking a config's sizes, alone and against the weights it describes.
extension ModelConfig {
  /// Checks the sizes the config states, in each section (the top level, the language model's
  /// and the vision tower's): counts and sizes are positive, the attention heads divide the
  /// hidden size (when `head_dim` does not say otherwise), the key-value heads divide the
  /// attention heads, and the layer count is the number of layers the weights hold.
  ///
  /// Only what the config states is checked: a vision tower's config without a key-value head
  /// count is fine. Tools call this once, through `Checkpoint.open`, so every tool refuses what
  /// the engine would.
  /// - Parameter tensors: the checkpoint's tensors, whose names give the layers present; empty
  ///   to check the config alone.
  /// - Throws: `ModelError.invalidValue` naming the config file and the key, dotted from the top
  ///   (`text_config.num_hidden_layers`).
  public func validate(against tensors: [TensorInfo]) throws(ModelError) {
    let summary =
      tensors.isEmpty ? nil : ArchitectureSummary.recognise(config: self, tensors: tensors)
    var sections: [(path: String, config: ModelConfig, component: ModelComponent?)] = []
    let textKey = ["text_config", "llm_config", "language_config"].first {
      raw[$0]?.objectValue != nil
    }
    if let text = textConfig, let textKey {
      sections.append(("", self, nil))
      sections.append((textKey + ".", text, .languageModel))
    } else {
      sections.append(("", self, summary?.kind == .visionEncoder ? .visionTower : .languageModel))
    }
    if let vision = visionConfig { sections.append(("vision_config.", vision, .visionTower)) }
    for section in sections {
      let layersPresent = summary.flatMap { summary in
        section.component.flatMap { component in
          ArchitectureSummary.layerCount(
            tensors.filter { summary.component(of: $0.name) == component })
        }
      }
      try section.config.validateSizes(
        path: section.path, location: location, layersPresent: layersPresent)
    }
  }

  /// The checks of `validate(against:)` on one section.
  private func validateSizes(path: String, location: String, layersPresent: Int?) throws(ModelError)
  {
    func fail(_ key: String, _ reason: String) -> ModelError {
      .invalidValue(location: location, key: path + key, reason: reason)
    }
    /// The first of `keys` the section states, with its value.
    func stated(_ keys: [String]) -> (key: String, value: Int)? {
      for key in keys { if let value = int(key) { return (key, value) } }
      return nil
    }
    let hidden = stated(["embed_dim", "hidden_size"])
    let layers = stated(["num_hidden_layers", "depth", "num_layers"])
    let heads = stated(["num_attention_heads", "num_heads"])
    let keyValueHeads = stated(["num_key_value_heads"])
    let headDimension = stated(["head_dim"])
    for entry in [
      stated(["vocab_size"]), hidden, layers, heads, keyValueHeads, headDimension,
      stated(["intermediate_size"]),
    ] {
      if let (key, value) = entry, value <= 0 { throw fail(key, "is \(value), not positive") }
    }
    if let (key, value) = heads, let (hiddenKey, size) = hidden, headDimension == nil,
      size % value != 0
    {
      throw fail(key, "is \(value), which does not divide \(hiddenKey) \(size)")
    }
    if let (key, value) = keyValueHeads, let (headsKey, count) = heads, count % value != 0 {
      throw fail(key, "is \(value), which does not divide \(headsKey) \(count)")
    }
    if let (key, value) = layers, let present = layersPresent, present != value {
      throw fail(key, "is \(value), but the weights hold \(present) layers")
    }
  }
}
