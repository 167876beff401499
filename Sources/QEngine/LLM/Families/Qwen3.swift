import QFormats

extension DecoderFamily {
  /// Qwen3: Qwen2's layers without biases, with an RMSNorm (`w`) on each query and key head
  /// before rotation.
  static func qwen3Architecture(_ text: ModelConfig, configuration c: DecoderConfiguration, location: String) throws
    -> DecoderArchitecture
  {
    var architecture = try qwen2Architecture(text, configuration: c, location: location)
    architecture.queryKeyNorms = true
    return architecture
  }
}
