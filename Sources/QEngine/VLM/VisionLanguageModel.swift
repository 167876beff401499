import QCompute
import QFormats

/// A vision-language model: the vision tower's features, projected, take the place of the
/// prompt's image tokens in the language model's input embeddings. LLaVA, Idefics3 (SmolVLM)
/// and InternVL lay out their towers and projectors differently; `vision` is the one the
/// config's `model_type` names.
public final class VisionLanguageModel: Sendable {
  public let vision: any ImageFeatureModel
  public let decoder: DecoderModel
  /// Turns a decoded image into the tower's pixels.
  public let preprocessor: ImagePreprocessor
  public let location: String
  /// The tokens a lone image token is wrapped in when it expands to the image's rows.
  public let imageMarkers: ImageMarkers

  /// The tokens the processor puts around an image's rows, e.g. Idefics3's
  /// `<fake_token_around_image><global-img>` before and `<fake_token_around_image>` after.
  public struct ImageMarkers: Sendable, Equatable {
    public var before: [Int]
    public var after: [Int]

    public init(before: [Int] = [], after: [Int] = []) {
      self.before = before
      self.after = after
    }
  }

  /// Reads the tower, projector and language model of a `LlavaForConditionalGeneration`,
  /// `Idefics3ForConditionalGeneration` (SmolVLM) or `InternVLForConditionalGeneration` checkpoint.
  /// - Parameters:
  ///   - preprocessor: From the folder's `preprocessor_config.json` when it has one; `nil` uses
  ///     `ImagePreprocessor.fallback(for:)`.
  ///   - imageMarkers: What a lone image token expands to around the image rows (see
  ///     `markers(for:tokenID:)`); none for LLaVA.
  /// - Throws: `EngineError` for missing or misshapen weights, `VisionLanguageError.widthMismatch`
  ///   when the projector does not produce the decoder's hidden size.
  public init(
    source: any TensorSource, config: ModelConfig, preprocessor: ImagePreprocessor? = nil,
    imageMarkers: ImageMarkers = ImageMarkers()
  ) throws {
    location = source.location
    self.imageMarkers = imageMarkers
    vision = try Self.imageFeatureModel(source: source, config: config)
    decoder = try DecoderModel(source: source, config: config, prefix: Self.languagePrefix(of: source))
    guard vision.textHiddenSize == decoder.configuration.hiddenSize else {
      throw VisionLanguageError.widthMismatch(
        location: source.location, projector: vision.textHiddenSize, decoder: decoder.configuration.hiddenSize)
    }
    guard let visionConfig = config.visionConfig else {
      throw EngineError.missingConfig(location: config.location, key: "vision_config")
    }
    self.preprocessor = try preprocessor ?? ImagePreprocessor.fallback(for: VisionConfig(visionConfig))
  }

  /// The image half the config's `model_type` names: Idefics3's for `idefics3` and `smolvlm`,
  /// InternVL's for `internvl`, LLaVA's otherwise.
  public static func imageFeatureModel(source: any TensorSource, config: ModelConfig) throws -> any ImageFeatureModel {
    switch config.modelType {
    case "idefics3", "smolvlm": try Idefics3Vision(source: source, config: config)
    case "internvl": try InternVLVision(source: source, config: config)
    default: try LLaVAVision(source: source, config: config)
    }
  }

  /// The markers the processor of `config`'s family puts around one image that is not split,
  /// looked up by `tokenID` (a tokenizer's token-to-id map): Idefics3's and SmolVLM's
  /// `<fake_token_around_image><global-img>` … `<fake_token_around_image>`, InternVL's `<img>` …
  /// `</img>`; none otherwise or when the tokenizer lacks them.
  public static func markers(for config: ModelConfig, tokenID: (String) -> Int?) -> ImageMarkers {
    if config.modelType == "internvl", let start = tokenID("<img>"), let end = tokenID("</img>") {
      return ImageMarkers(before: [start], after: [end])
    }
    guard ["idefics3", "smolvlm"].contains(config.modelType), let fake = tokenID("<fake_token_around_image>"),
      let global = tokenID("<global-img>")
    else { return ImageMarkers() }
    return ImageMarkers(before: [fake, global], after: [fake])
  }

  /// `language_model.` for the classic LLaVA layout; whatever precedes `model.embed_tokens.weight`
  /// otherwise.
  static func languagePrefix(of source: any TensorSource) -> String {
    let suffix = "model.embed_tokens.weight"
    if source.info(named: "language_model." + suffix) != nil { return "language_model." }
    guard let name = source.tensors.first(where: { $0.name.hasSuffix(suffix) })?.name else { return "language_model." }
    return String(name.dropLast(suffix.count))
  }

  /// The configured image token, or `nil` (the image then goes before the prompt).
  public var imageTokenIndex: Int? { vision.imageTokenIndex }

  /// Image features `[rows, hiddenSize]` of a decoded image, preprocessed for this tower.
  public func imageFeatures(of image: RGBImage) throws -> Matrix<Float> {
    try imageFeatures(pixels: preprocessor(image))
  }

  /// Image features `[rows, hiddenSize]` of preprocessed pixels.
  public func imageFeatures(pixels: PixelTensor) throws -> Matrix<Float> {
    let features = try vision.imageFeatures(pixels: pixels)
    return try Matrix(rows: features.count, columns: vision.textHiddenSize, elements: features.values)
  }
}

extension ImagePreprocessor {
  /// For a tower without `preprocessor_config.json`: a bicubic resize to the config's square
  /// `image_size`, then the mean and standard deviation the tower family was trained with
  /// (ImageNet's for DINOv2, OpenAI CLIP's for CLIP, 0.5 for SigLIP).
  public static func fallback(for vision: VisionConfig) -> ImagePreprocessor {
    let (mean, std): ([Double], [Double])
    switch vision.kind {
    case .dinov2, .internVL: (mean, std) = ([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])
    case .clip: (mean, std) = ([0.48145466, 0.4578275, 0.40821073], [0.26862954, 0.26130258, 0.27577711])
    case .siglip: (mean, std) = ([0.5, 0.5, 0.5], [0.5, 0.5, 0.5])
    }
    return ImagePreprocessor(
      resize: .exact(height: vision.imageSize, width: vision.imageSize), resample: .bicubic, mean: mean, std: std)
  }
}
