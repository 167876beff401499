import QFormats

/// The image half of a LLaVA-style model: vision tower, the configured hidden state, the
/// two-layer projector; and the splice of its output into the language model's input embeddings.
public final class LLaVAVision: Sendable {
  public let encoder: VisionEncoder
  public let towerPrefix: String
  /// `vision_feature_layer`: a Python-style index into the tower's hidden states.
  public let featureLayer: Int
  /// `vision_feature_select_strategy == "default"` drops the class token; `"full"` keeps it.
  public let dropsClassToken: Bool
  /// `image_token_index`, when the config has one.
  public let imageTokenIndex: Int?
  public let textHiddenSize: Int
  let linear1: VisionEncoder.Linear
  let linear2: VisionEncoder.Linear
  let projectorActivation: VisionConfig.Activation

  /// Reads the tower and projector of a `LlavaForConditionalGeneration` checkpoint.
  public init(source: any TensorSource, config: ModelConfig) throws {
    guard let visionConfig = config.visionConfig else {
      throw EngineError.missingConfig(location: config.location, key: "vision_config")
    }
    let vision = try VisionConfig(visionConfig)
    let prefix = vision.kind == .dinov2 ? "vision_tower." : "vision_tower.vision_model."
    encoder = try VisionEncoder(source: source, config: vision, prefix: prefix)
    towerPrefix = prefix
    featureLayer = config.raw["vision_feature_layer"]?.intValue ?? -2
    let strategy = config.raw["vision_feature_select_strategy"]?.stringValue ?? "default"
    guard strategy == "default" || strategy == "full" else {
      throw EngineError.unsupportedArchitecture(location: config.location, family: "vision_feature_select_strategy \(strategy)")
    }
    dropsClassToken = strategy == "default" && vision.hasClassToken
    imageTokenIndex = config.raw["image_token_index"]?.intValue ?? config.raw["image_token_id"]?.intValue
    projectorActivation = try VisionConfig.activation(
      config.raw["projector_hidden_act"]?.stringValue ?? "gelu", location: config.location)
    let loader = WeightLoader(source: source, prefix: "multi_modal_projector.")
    guard let weight = source.info(named: "multi_modal_projector.linear_1.weight"), weight.shape.count == 2 else {
      throw EngineError.missingTensor(location: source.location, tensor: "multi_modal_projector.linear_1.weight")
    }
    let text = weight.shape[0]
    let d = vision.hiddenSize
    textHiddenSize = text
    linear1 = VisionEncoder.Linear(
      weight: try loader.floats("linear_1.weight", shape: [text, d]), bias: try loader.floats("linear_1.bias", shape: [text]),
      inputWidth: d, outputWidth: text)
    linear2 = VisionEncoder.Linear(
      weight: try loader.floats("linear_2.weight", shape: [text, text]),
      bias: try loader.floats("linear_2.bias", shape: [text]), inputWidth: text, outputWidth: text)
  }

  /// Image features `[count, textHiddenSize]` row-major, one row per image token.
  public func imageFeatures(pixels: PixelTensor) throws -> (count: Int, values: [Float]) {
    let output = try encoder.forward(pixels: pixels)
    guard var selected = output.hiddenState(at: featureLayer) else {
      throw EngineError.missingConfig(
        location: "vision_feature_layer \(featureLayer)", key: "a hidden state of \(output.hiddenStates.count)")
    }
    var rows = output.tokenCount
    if dropsClassToken {
      selected.removeFirst(output.hiddenSize)
      rows -= 1
    }
    var hidden = linear1(selected, rows: rows)
    VisionKernels.activate(&hidden, projectorActivation)
    return (rows, linear2(hidden, rows: rows))
  }

  /// Replaces the rows of `embeddings` (`[tokens.count, width]`) at the image-token positions with
  /// the feature rows, in order, as LLaVA does.
  /// - Throws: when the number of image tokens differs from the number of feature rows.
  public static func splice(
    embeddings: inout [Float], tokens: [Int], imageToken: Int, features: [Float], width: Int
  ) throws {
    let positions = tokens.indices.filter { tokens[$0] == imageToken }
    guard width > 0, embeddings.count == tokens.count * width, features.count == positions.count * width else {
      throw EngineError.unexpectedShape(
        location: "prompt", tensor: "image features", expected: [positions.count, width],
        found: [width == 0 ? 0 : features.count / width, width])
    }
    for (row, position) in positions.enumerated() {
      for i in 0..<width { embeddings[position * width + i] = features[row * width + i] }
    }
  }

  /// `splice` with this model's image token.
  public func splice(embeddings: inout [Float], tokens: [Int], features: [Float]) throws {
    guard let imageTokenIndex else {
      throw EngineError.missingConfig(location: "llava config", key: "image_token_index")
    }
    try Self.splice(embeddings: &embeddings, tokens: tokens, imageToken: imageTokenIndex, features: features, width: textHiddenSize)
  }
}
