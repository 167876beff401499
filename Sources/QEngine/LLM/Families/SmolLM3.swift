import QFormats

extension DecoderFamily {
  /// SmolLM3: Llama's block, with no rotary embedding in the layers `no_rope_layers` marks 0
  /// (by default every fourth, as `no_rope_layer_interval` says), and Qwen's sliding windows.
  static func smolLM3Architecture(_ text: ModelConfig, configuration c: DecoderConfiguration, location: String) throws
    -> DecoderArchitecture
  {
    var architecture = DecoderArchitecture()
    let rope = DecoderArchitecture.Rope(theta: c.ropeTheta, scaling: c.ropeScaling)
    let usesRope: [Bool]
    if let list = text.raw["no_rope_layers"]?.arrayValue {
      let flags = list.compactMap(\.intValue)
      guard flags.count == list.count, flags.count >= c.layerCount, flags.allSatisfy({ $0 == 0 || $0 == 1 }) else {
        throw DecoderError.invalidConfig(
          location: location, key: "no_rope_layers", reason: "has \(list.count) entries, expected \(c.layerCount) of 0 or 1")
      }
      usesRope = flags.prefix(c.layerCount).map { $0 == 1 }
    } else {
      let interval = text.raw["no_rope_layer_interval"]?.intValue ?? 4
      guard interval > 0 else {
        throw DecoderError.invalidConfig(location: location, key: "no_rope_layer_interval", reason: "is \(interval), not positive")
      }
      usesRope = (0..<c.layerCount).map { ($0 + 1) % interval != 0 }
    }
    let windows = try qwenLayers(text, configuration: c, location: location).map(\.slidingWindow)
    architecture.layers = usesRope.enumerated().map { index, uses in
      .init(slidingWindow: windows.isEmpty ? nil : windows[index], rope: uses ? rope : nil)
    }
    return architecture
  }
}
