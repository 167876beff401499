import QFormats

extension DecoderFamily {
  /// Phi-3: Llama's block (SiLU, `w` norms, no biases) whose q/k/v and gate/up weights are stored
  /// fused; its LongRoPE is read with the rest of the rope settings. Partial rotary embeddings
  /// (Phi-4-mini's `partial_rotary_factor` below 1) are refused.
  static func phi3Architecture(_ text: ModelConfig, location: String) throws -> DecoderArchitecture {
    let partial = text.raw["partial_rotary_factor"]?.doubleValue ?? text.raw["rope_parameters"]?["partial_rotary_factor"]?.doubleValue
    if let partial, partial != 1 {
      throw DecoderError.invalidConfig(
        location: location, key: "partial_rotary_factor", reason: "is \(partial); only 1 is supported")
    }
    var architecture = DecoderArchitecture()
    architecture.fusedProjections = true
    return architecture
  }
}
