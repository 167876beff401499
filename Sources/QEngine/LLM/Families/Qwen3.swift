extension DecoderFamily {
  /// Qwen3: Llama's block with an RMSNorm (`w`) on each query and key head before rotation.
  static func qwen3Architecture() -> DecoderArchitecture {
    var architecture = DecoderArchitecture()
    architecture.queryKeyNorms = true
    return architecture
  }
}
