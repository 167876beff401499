import QFormats

/// The decoder families the engine implements, keyed by the config's `model_type`: the registry.
///
/// Tensor names do not tell families apart: a Gemma checkpoint names its weights exactly as
/// Llama does but wants GELU, `1 + w` norms and a scaled embedding. So the engine runs a config
/// only when its `model_type` is listed here. Each family's own file (`LLM/Families/`) maps its
/// config to the `DecoderArchitecture` every pass reads.
public enum DecoderFamily: String, Sendable, CaseIterable {
  case llama
  /// Llama with a sliding window on every layer when `sliding_window` is set.
  case mistral
  /// Qwen2 adds q/k/v biases and optional sliding windows on its upper layers.
  case qwen2
  /// Qwen2's layers with per-head q/k RMSNorm, no biases.
  case qwen3
  /// GELU, `(1 + w)` norms and a scaled embedding.
  case gemma
  /// Gemma with four norms per block, soft-capping and alternating sliding windows.
  case gemma2
  /// Gemma 3's text model (also the `text_config` of the `gemma3` wrapper).
  case gemma3Text = "gemma3_text"
  /// Llama's block with rope left out of some layers (NoPE).
  case smollm3
  /// Llama's block with fused q/k/v and gate/up weights and LongRoPE.
  case phi3

  /// The `model_type` values the engine runs, in the order error messages list them.
  public static let supportedModelTypes: [String] = allCases.map(\.rawValue)

  /// The registry: each family under its `model_type`.
  static let registry: [String: DecoderFamily] = Dictionary(
    uniqueKeysWithValues: allCases.map { ($0.rawValue, $0) })

  /// The family of a language model's config (`text_config` in a multimodal config).
  /// - Throws: `EngineError.unsupportedModelType` for an absent or unknown `model_type`.
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
    self = family
  }

  /// The text model a wrapper's `text_config` defaults to in transformers.
  static func defaultTextType(of wrapper: String?) -> String? {
    switch wrapper {
    case "llava", "llava_next", "idefics3", "smolvlm": "llama"
    case "gemma3": "gemma3_text"
    default: nil
    }
  }

  /// The block this family computes for `text`, whose shared settings `configuration` holds.
  func architecture(
    _ text: ModelConfig, configuration: DecoderConfiguration, location: String
  ) throws -> DecoderArchitecture {
    switch self {
    case .llama: DecoderArchitecture()
    case .mistral: try Self.mistralArchitecture(text, configuration: configuration, location: location)
    case .qwen2: try Self.qwen2Architecture(text, configuration: configuration, location: location)
    case .qwen3: try Self.qwen3Architecture(text, configuration: configuration, location: location)
    case .gemma: try Self.gemmaArchitecture(text, configuration: configuration, location: location)
    case .gemma2: try Self.gemma2Architecture(text, configuration: configuration, location: location)
    case .gemma3Text: try Self.gemma3Architecture(text, configuration: configuration, location: location)
    case .smollm3: try Self.smolLM3Architecture(text, configuration: configuration, location: location)
    case .phi3: try Self.phi3Architecture(text, location: location)
    }
  }
}
