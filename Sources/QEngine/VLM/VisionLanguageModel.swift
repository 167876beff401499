import QCompute
import QFormats

/// A LLaVA-style vision-language model: the vision tower's features, projected, take the place of
/// the prompt's image token in the language model's input embeddings.
public final class VisionLanguageModel: Sendable {
  public let vision: LLaVAVision
  public let decoder: DecoderModel
  /// Turns a decoded image into the tower's pixels.
  public let preprocessor: ImagePreprocessor
  public let location: String

  /// Reads the tower, projector and language model (under `language_model.`) of a
  /// `LlavaForConditionalGeneration` checkpoint.
  /// - Parameters:
  ///   - preprocessor: From the folder's `preprocessor_config.json` when it has one; `nil` uses
  ///     `ImagePreprocessor.fallback(for:)`.
  /// - Throws: `EngineError` for missing or misshapen weights, `VisionLanguageError.widthMismatch`
  ///   when the projector does not produce the decoder's hidden size.
  public init(source: any TensorSource, config: ModelConfig, preprocessor: ImagePreprocessor? = nil) throws {
    location = source.location
    vision = try LLaVAVision(source: source, config: config)
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
    case .dinov2: (mean, std) = ([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])
    case .clip: (mean, std) = ([0.48145466, 0.4578275, 0.40821073], [0.26862954, 0.26130258, 0.27577711])
    case .siglip: (mean, std) = ([0.5, 0.5, 0.5], [0.5, 0.5, 0.5])
    }
    return ImagePreprocessor(
      resize: .exact(height: vision.imageSize, width: vision.imageSize), resample: .bicubic, mean: mean, std: std)
  }
}
