import QFormats

extension DecoderFamily {
  /// Qwen2: Llama's block with q/k/v biases (read when present), and sliding windows as
  /// `qwenLayers` reads them.
  static func qwen2Architecture(_ text: ModelConfig, configuration c: DecoderConfiguration, location: String) throws
    -> DecoderArchitecture
  {
    var architecture = DecoderArchitecture()
    architecture.layers = try qwenLayers(text, configuration: c, location: location)
    return architecture
  }

  /// The layers of a Qwen-style config (also SmolLM3's), as transformers reads them: windows
  /// only with `use_sliding_window`, `sliding_window` long, on the layers `layer_types` marks
  /// `sliding_attention`, else on layers from `max_window_layers` on (28 by default); empty
  /// when no layer slides.
  static func qwenLayers(_ text: ModelConfig, configuration c: DecoderConfiguration, location: String) throws
    -> [DecoderArchitecture.LayerAttention]
  {
    guard text.raw["use_sliding_window"]?.boolValue == true, let window = text.raw["sliding_window"],
      !window.isNull
    else { return [] }
    guard let size = window.intValue, size > 0 else {
      throw DecoderError.invalidConfig(location: location, key: "sliding_window", reason: "is not a positive integer")
    }
    let first = text.raw["max_window_layers"]?.intValue ?? 28
    let types =
      try DecoderConfiguration.layerTypes(text, count: c.layerCount, location: location)
      ?? (0..<c.layerCount).map { $0 >= first ? "sliding_attention" : "full_attention" }
    guard types.contains("sliding_attention") else { return [] }
    return (0..<c.layerCount).map { index in
      .init(slidingWindow: types[index] == "sliding_attention" ? size : nil, rope: c.attention(layer: index).rope)
    }
  }
}
