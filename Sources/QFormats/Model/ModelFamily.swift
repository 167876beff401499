/// The model families recognised from a config or from tensor names.
public enum ModelFamily: String, Sendable, CaseIterable, Codable {
  // Decoder language models.
  case llama
  case mistral
  case qwen2
  case gemma
  case gemma2
  case gemma3
  case phi3
  // Vision encoders.
  case vit
  case dinov2
  case siglip
  case clipVision = "clip_vision"
  case internViT = "intern_vit"
  /// The vision transformer inside Qwen2-VL (`visual.blocks.#`).
  case qwen2VisionTransformer = "qwen2_vl_vision"
  // Text encoders.
  case bert
  // Vision-language models.
  case llava
  case paliGemma = "paligemma"
  case internVL = "internvl"
  case qwen2VL = "qwen2_vl"
  /// Idefics3 and SmolVLM, which share its layout.
  case idefics3
  case unknown

  /// What a model of this family is, leaving aside Gemma 3, which comes both with and without vision.
  public var kind: ModelKind {
    switch self {
    case .llama, .mistral, .qwen2, .gemma, .gemma2, .gemma3, .phi3: .decoderLLM
    case .vit, .dinov2, .siglip, .clipVision, .internViT, .qwen2VisionTransformer: .visionEncoder
    case .bert: .textEncoder
    case .llava, .paliGemma, .internVL, .qwen2VL, .idefics3: .visionLanguage
    case .unknown: .unknown
    }
  }

  /// The family a config's `model_type` names, or `nil` for types not recognised here.
  public init?(modelType: String) {
    switch modelType.lowercased() {
    case "llama": self = .llama
    case "mistral": self = .mistral
    case "qwen2": self = .qwen2
    case "gemma": self = .gemma
    case "gemma2": self = .gemma2
    case "gemma3", "gemma3_text": self = .gemma3
    case "phi3": self = .phi3
    case "vit": self = .vit
    case "dinov2": self = .dinov2
    case "siglip", "siglip_vision_model": self = .siglip
    case "clip", "clip_vision_model": self = .clipVision
    case "intern_vit_6b", "internvision": self = .internViT
    case "qwen2_vl_vision", "qwen2_5_vl_vision": self = .qwen2VisionTransformer
    case "bert", "roberta", "xlm-roberta": self = .bert
    case "llava", "llava_next": self = .llava
    case "paligemma": self = .paliGemma
    case "internvl_chat", "internvl": self = .internVL
    case "qwen2_vl", "qwen2_5_vl": self = .qwen2VL
    case "idefics3", "smolvlm": self = .idefics3
    default: return nil
    }
  }

  /// The family an `architectures` entry such as `LlamaForCausalLM` names, most specific first.
  public init?(architecture: String) {
    let table: [(String, ModelFamily)] = [
      ("llava", .llava), ("paligemma", .paliGemma), ("internvl", .internVL),
      ("qwen2vl", .qwen2VL), ("qwen2_5_vl", .qwen2VL), ("idefics3", .idefics3), ("smolvlm", .idefics3),
      ("gemma3", .gemma3), ("gemma2", .gemma2), ("gemma", .gemma), ("qwen2", .qwen2),
      ("mistral", .mistral), ("llama", .llama), ("phi3", .phi3), ("dinov2", .dinov2),
      ("siglip", .siglip), ("clip", .clipVision), ("internvision", .internViT), ("vit", .vit),
      ("bert", .bert),
    ]
    let lowered = architecture.lowercased()
    guard let match = table.first(where: { lowered.hasPrefix($0.0) }) else { return nil }
    self = match.1
  }
}

/// What a model does, which decides how its parts are shown.
public enum ModelKind: String, Sendable, CaseIterable, Codable {
  case decoderLLM = "decoder-llm"
  case visionEncoder = "vision-encoder"
  case textEncoder = "text-encoder"
  case visionLanguage = "vision-language"
  case unknown
}

/// The part of a model a tensor belongs to.
public enum ModelComponent: String, Sendable, CaseIterable, Codable {
  case visionTower = "vision-tower"
  /// The connector between vision tower and language model.
  case projector
  case languageModel = "language-model"
  /// Heads and extras outside the recognised parts (classifiers, saliency decoders).
  case other
}

/// What a tensor does inside its component.
public enum TensorRole: String, Sendable, CaseIterable, Codable {
  case tokenEmbedding = "token-embedding"
  case patchEmbedding = "patch-embedding"
  /// Position embeddings and learned special tokens (class, mask, register tokens).
  case positionEmbedding = "position-embedding"
  case attention
  case mlp
  case norm
  /// Per-channel residual scales (DINOv2 `layer_scale`, InternViT `ls1`).
  case layerScale = "layer-scale"
  case lmHead = "lm-head"
  /// Weights of the vision-to-language connector.
  case projection
  case other
}
