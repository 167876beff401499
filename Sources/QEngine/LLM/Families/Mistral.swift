import QFormats

extension DecoderFamily {
  /// Mistral: Llama's block, every layer attending to the last `sliding_window` positions when
  /// the config sets one.
  static func mistralArchitecture(
    _ text: ModelConfig, configuration c: DecoderConfiguration, location: String
  ) throws -> DecoderArchitecture {
    var architecture = DecoderArchitecture()
    guard let window = text.raw["sliding_window"], !window.isNull else { return architecture }
    guard let size = window.intValue, size > 0 else {
      throw DecoderError.invalidConfig(location: location, key: "sliding_window", reason: "is not a positive integer")
    }
    architecture.layers = (0..<c.layerCount).map { c.attention(layer: $0) }.map {
      .init(slidingWindow: size, rope: $0.rope)
    }
    return architecture
  }
}
