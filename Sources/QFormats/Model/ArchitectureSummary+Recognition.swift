/// Recognising layout, family and sizes.
extension ArchitectureSummary {
  /// Describes a checkpoint from its config (when there is one) and its tensors.
  /// - Parameters:
  ///   - config: The parsed `config.json`, or `nil` when the checkpoint came without one.
  ///   - tensors: Every tensor of the checkpoint; only names and shapes are used.
  public static func recognise(config: ModelConfig?, tensors: [TensorInfo]) -> ArchitectureSummary {
    let names = _NameIndex(tensors.map(\.name))
    let configFamily = config.flatMap(familyStated(by:))
    let layout = _Layout.detect(names) ?? configFamily.map(_Layout.default(for:)) ?? .unknown

    var summary = ArchitectureSummary(
      family: .unknown, kind: .unknown, languageFamily: nil, visionFamily: nil,
      language: nil, vision: nil, usedConfig: config != nil,
      componentPrefixes: layout.prefixes.sorted { $0.prefix.count > $1.prefix.count })

    let languageTensors = tensors.filter { summary.component(of: $0.name) == .languageModel }
    let visionTensors = tensors.filter { summary.component(of: $0.name) == .visionTower }
    let projectorNames = tensors.filter { summary.component(of: $0.name) == .projector }.map(\.name)
    let fromNames = layout.family(
      language: languageFamily(of: languageTensors), vision: visionFamily(of: visionTensors),
      projectorNames: projectorNames)

    summary.family = configFamily ?? fromNames.family
    summary.kind = summary.family.kind
    if summary.family == .gemma3, config?.visionConfig != nil || !visionTensors.isEmpty {
      summary.kind = .visionLanguage
    }

    // Config sections for each part.
    var languageConfig: ModelConfig?
    var visionConfig: ModelConfig?
    if let config {
      switch summary.kind {
      case .visionLanguage:
        languageConfig = config.textConfig ?? config
        visionConfig = config.visionConfig
      case .visionEncoder:
        visionConfig = config.visionConfig ?? config
      case .decoderLLM, .textEncoder, .unknown:
        languageConfig = config.textConfig ?? config
      }
    }

    let hasLanguage = !languageTensors.isEmpty || languageConfig != nil
    let hasVision = !visionTensors.isEmpty || visionConfig != nil
    if hasLanguage {
      summary.languageFamily =
        languageConfig.flatMap(familyStated(by:)).flatMap { $0.kind == .visionLanguage ? nil : $0 }
        ?? fromNames.language ?? (summary.kind == .visionLanguage ? nil : summary.family)
      var sizes = languageConfig.map { HyperParameters(config: $0, fallbackVocabSize: config?.vocabSize) }
        ?? HyperParameters()
      sizes.fillGaps(from: inferLanguageSizes(languageTensors, headDim: sizes.headDim))
      summary.language = completed(sizes)
    }
    if hasVision {
      summary.visionFamily =
        visionConfig.flatMap(familyStated(by:)).flatMap { $0.kind == .visionEncoder ? $0 : nil }
        ?? fromNames.vision ?? (summary.kind == .visionEncoder ? summary.family : nil)
      var sizes = visionConfig.map { HyperParameters(config: $0) } ?? HyperParameters()
      sizes.vocabSize = nil
      sizes.fillGaps(from: inferVisionSizes(visionTensors))
      summary.vision = completed(sizes)
    }
    return summary
  }

  /// The family a config names by `model_type`, or failing that by `architectures`.
  static func familyStated(by config: ModelConfig) -> ModelFamily? {
    if let type = config.modelType, let family = ModelFamily(modelType: type) { return family }
    return config.architectures.lazy.compactMap(ModelFamily.init(architecture:)).first
  }

  /// Head size from hidden size and head count when only those are known (the usual convention).
  private static func completed(_ sizes: HyperParameters) -> HyperParameters {
    var sizes = sizes
    if sizes.headDim == nil, let hidden = sizes.hiddenSize, let heads = sizes.attentionHeads, heads > 0,
      hidden % heads == 0
    {
      sizes.headDim = hidden / heads
    }
    return sizes
  }

  // MARK: Families from names

  /// The language model's family from its tensor names, most distinctive signal first.
  static func languageFamily(of tensors: [TensorInfo]) -> ModelFamily? {
    guard !tensors.isEmpty else { return nil }
    let names = _NameIndex(tensors.map(\.name))
    if names.anyContains("word_embeddings.") && names.anyContains(".attention.self.") { return .bert }
    if names.anyContains(".qkv_proj.") || names.anyContains(".gate_up_proj.") { return .phi3 }
    if names.anyContains("pre_feedforward_layernorm.") {
      return names.anyContains("self_attn.q_norm.") ? .gemma3 : .gemma2
    }
    if names.anyContains("self_attn.q_proj.bias") { return .qwen2 }
    guard names.anyContains("self_attn.q_proj.") || names.anyContains("embed_tokens.") else { return nil }
    // Gemma 1 has Llama's names; its 256k vocabulary tells it apart.
    if let embedding = tensors.first(where: { $0.name.hasSuffix("embed_tokens.weight") }),
      embedding.shape.count == 2, embedding.shape[0] >= 256_000
    {
      return .gemma
    }
    return .llama
  }

  /// The vision tower's family from its tensor names.
  static func visionFamily(of tensors: [TensorInfo]) -> ModelFamily? {
    guard !tensors.isEmpty else { return nil }
    let names = _NameIndex(tensors.map(\.name))
    if names.anyContains("layer_scale1.") || names.anyContains("embeddings.mask_token") { return .dinov2 }
    if names.anyContains("blocks.") && names.anyContains("patch_embed.proj.") { return .qwen2VisionTransformer }
    if names.anyContains(".ls1") || names.anyContains(".attn.qkv.") { return .internViT }
    if names.anyContains("embeddings.class_embedding") && names.anyContains("pre_layrnorm.") {
      return .clipVision
    }
    if names.anyContains("embeddings.patch_embedding.") && names.anyContains("encoder.layers.") {
      return .siglip
    }
    if names.anyContains("attention.attention.query.") { return .vit }
    return nil
  }
}

/// Tensor names with the two questions recognition asks of them.
struct _NameIndex {
  var names: [String]
  init(_ names: [String]) { self.names = names }
  func anyHasPrefix(_ prefix: String) -> Bool { names.contains { $0.hasPrefix(prefix) } }
  func anyContains(_ part: String) -> Bool { names.contains { $0.contains(part) } }
}
