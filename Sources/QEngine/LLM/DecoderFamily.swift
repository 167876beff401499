import QFormats

/// The decoder families the engine implements, keyed by the config's `model_type`.
///
/// Tensor names do not tell these apart from families the engine does not implement: a Gemma
/// checkpoint names its weights exactly as Llama does but wants GELU, `1 + w` norms and a scaled
/// embedding. So the engine runs a config only when its `model_type` is listed here, and refuses
/// the settings of a listed family that it does not honour (sliding-window attention).
public enum DecoderFamily: String, Sendable, CaseIterable {
  case llama
  /// Mistral runs as Llama while its sliding window is absent or at least the trained context.
  case mistral
  /// Qwen2 adds q/k/v biases; its optional sliding window must be off.
  case qwen2

  /// The `model_type` values the engine runs, in the order error messages list them.
  public static let supportedModelTypes: [String] = allCases.map(\.rawValue)

  /// The registry: each family under its `model_type`.
  static let registry: [String: DecoderFamily] = Dictionary(
    uniqueKeysWithValues: allCases.map { ($0.rawValue, $0) })

  /// The family of a language model's config (`text_config` in a multimodal config).
  /// - Throws: `EngineError.unsupportedModelType` for an absent or unknown `model_type`, or for
  ///   a setting of a known one the engine does not implement.
  public init(_ config: ModelConfig) throws {
    let text = config.textConfig ?? config
    let location = config.location
    // A multimodal config whose text_config leaves model_type out means its wrapper's default.
    let type =
      text.modelType
      ?? (config.textConfig != nil ? Self.defaultTextType(of: config.modelType) : nil)
    guard let type else {
      throw EngineError.unsupportedModelType(location: location, modelType: nil, reason: nil)
    }
    guard let family = Self.registry[type] else {
      throw EngineError.unsupportedModelType(location: location, modelType: type, reason: nil)
    }
    if let reason = family.unsupportedSetting(of: text) {
      throw EngineError.unsupportedModelType(location: location, modelType: type, reason: reason)
    }
    self = family
  }

  /// The text model a wrapper's `text_config` defaults to in transformers.
  static func defaultTextType(of wrapper: String?) -> String? {
    switch wrapper {
    case "llava", "llava_next", "idefics3", "smolvlm": "llama"
    default: nil
    }
  }

  /// The setting that keeps the engine from running this config of the family, or `nil`.
  func unsupportedSetting(of text: ModelConfig) -> String? {
    switch self {
    case .llama:
      return nil
    case .mistral:
      guard let window = text.raw["sliding_window"]?.intValue else { return nil }
      guard let context = text.maxPositionEmbeddings else {
        return "sliding_window \(window) and no max_position_embeddings to bound it"
      }
      guard window < context else { return nil }
      return "sliding_window \(window), shorter than its context of \(context),"
    case .qwen2:
      guard text.raw["use_sliding_window"]?.boolValue == true else { return nil }
      return "use_sliding_window true"
    }
  }
}
