/// Checkpoint layouts: which name prefixes hold which part.
enum _Layout {
  /// LLaVA, PaliGemma, Gemma 3: `vision_tower.`, `multi_modal_projector.`, `language_model.`
  /// (with a leading `model.` since transformers 4.52).
  case llava
  /// InternVL: `vision_model.`, `mlp1.`, `language_model.`.
  case internVL
  /// Qwen2-VL: `visual.` with `visual.merger.` as projector, `model.` and `lm_head.` for the language model.
  case qwen2VL
  /// Idefics3 and SmolVLM: `model.vision_model.`, `model.connector.`, `model.text_model.`.
  case idefics3
  /// A decoder: `model.` and `lm_head.`, or the same without `model.` (`layers.`,
  /// `embed_tokens.`, `norm.`) as a base model saved by AutoModel or sentence-transformers.
  case decoder
  /// BERT-style text encoder, bare or under `bert.`/`roberta.`.
  case textEncoder
  /// CLIP and SigLIP towers: `vision_model.` (and `text_model.` in the dual model).
  case clipStyleVision
  /// ViT and DINOv2: `embeddings.`, `encoder.`, `layernorm.`, bare or under `vit.`/`dinov2.`.
  case vitStyleVision
  case unknown

  /// Recognises the layout from names alone, or `nil` when nothing matches.
  static func detect(_ names: _NameIndex) -> _Layout? {
    if names.anyHasPrefix("model.vision_model.")
      && (names.anyHasPrefix("model.connector.") || names.anyHasPrefix("model.text_model."))
    {
      return .idefics3
    }
    if names.anyHasPrefix("visual.") || names.anyHasPrefix("model.visual.") { return .qwen2VL }
    if names.anyHasPrefix("vision_model.") && names.anyHasPrefix("language_model.") { return .internVL }
    if names.anyHasPrefix("vision_tower.") || names.anyHasPrefix("model.vision_tower.") { return .llava }
    // A multimodal wrapper's language model saved without its vision tower.
    if names.anyHasPrefix("language_model.model.") || names.anyHasPrefix("model.language_model.") {
      return .llava
    }
    if names.anyContains("embeddings.word_embeddings.") { return .textEncoder }
    if names.anyHasPrefix("model.layers.") || names.anyHasPrefix("model.embed_tokens.") {
      return .decoder
    }
    if names.anyHasPrefix("embed_tokens.") || (names.anyHasPrefix("layers.") && names.anyContains(".self_attn.")) {
      return .decoder
    }
    if names.anyHasPrefix("vision_model.") { return .clipStyleVision }
    if names.anyContains("encoder.layer.") && names.anyContains("embeddings.") { return .vitStyleVision }
    return nil
  }

  /// The layout a family uses when there are no names to look at.
  static func `default`(for family: ModelFamily) -> _Layout {
    switch family {
    case .llava, .paliGemma: .llava
    case .internVL: .internVL
    case .qwen2VL: .qwen2VL
    case .idefics3: .idefics3
    case .llama, .mistral, .qwen2, .gemma, .gemma2, .gemma3, .phi3: .decoder
    case .bert: .textEncoder
    case .siglip, .clipVision, .internViT: .clipStyleVision
    case .vit, .dinov2: .vitStyleVision
    case .qwen2VisionTransformer, .unknown: .unknown
    }
  }

  var prefixes: [ArchitectureSummary.ComponentPrefix] {
    typealias P = ArchitectureSummary.ComponentPrefix
    let pairs: [(String, ModelComponent)] =
      switch self {
      case .llava:
        [
          ("vision_tower.", .visionTower), ("model.vision_tower.", .visionTower),
          ("multi_modal_projector.", .projector), ("model.multi_modal_projector.", .projector),
          ("language_model.", .languageModel), ("model.language_model.", .languageModel),
          ("lm_head.", .languageModel),
        ]
      case .internVL:
        [("vision_model.", .visionTower), ("mlp1.", .projector), ("language_model.", .languageModel)]
      case .qwen2VL:
        [
          ("visual.merger.", .projector), ("model.visual.merger.", .projector),
          ("visual.", .visionTower), ("model.visual.", .visionTower),
          ("model.", .languageModel), ("lm_head.", .languageModel),
        ]
      case .idefics3:
        [
          ("model.vision_model.", .visionTower), ("model.connector.", .projector),
          ("model.text_model.", .languageModel), ("lm_head.", .languageModel),
        ]
      case .decoder:
        [
          ("model.", .languageModel), ("lm_head.", .languageModel), ("layers.", .languageModel),
          ("embed_tokens.", .languageModel), ("norm.", .languageModel),
        ]
      case .textEncoder:
        [
          ("bert.", .languageModel), ("roberta.", .languageModel), ("embeddings.", .languageModel),
          ("encoder.", .languageModel), ("pooler.", .languageModel),
        ]
      case .clipStyleVision:
        [("vision_model.", .visionTower), ("text_model.", .languageModel)]
      case .vitStyleVision:
        [
          ("vit.", .visionTower), ("dinov2.", .visionTower), ("embeddings.", .visionTower),
          ("encoder.", .visionTower), ("layernorm.", .visionTower), ("pooler.", .visionTower),
        ]
      case .unknown:
        []
      }
    return pairs.map { P(prefix: $0.0, component: $0.1) }
  }

  /// The whole model's family as the names tell it, given the parts' families.
  func family(language: ModelFamily?, vision: ModelFamily?, projectorNames: [String])
    -> (family: ModelFamily, language: ModelFamily?, vision: ModelFamily?)
  {
    let family: ModelFamily =
      switch self {
      case .llava:
        if projectorNames.contains(where: { $0.hasSuffix("mm_input_projection_weight") }) {
          .gemma3
        } else if projectorNames.contains(where: { $0.hasSuffix("multi_modal_projector.linear.weight") }) {
          .paliGemma
        } else {
          .llava
        }
      case .internVL: .internVL
      case .qwen2VL: .qwen2VL
      case .idefics3: .idefics3
      case .decoder, .textEncoder: language ?? .unknown
      case .clipStyleVision, .vitStyleVision: vision ?? .unknown
      case .unknown: .unknown
      }
    return (family, language, vision)
  }
}
