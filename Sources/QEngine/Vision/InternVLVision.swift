import QFormats

/// The image half of an InternVL checkpoint (transformers' `InternVLForConditionalGeneration`):
/// the InternViT tower, its `vision_feature_layer` without the class token, pixel-shuffled by
/// `1 / downsample_ratio`, and the projector (`mlp1` in the original layout): layer norm, linear,
/// activation, linear.
///
/// The tower sits under `vision_tower.` (as transformers saves it) or `model.vision_tower.` (its
/// names in memory), the projector under the matching `multi_modal_projector.`. One image is one
/// tile of the tower's `image_size`; InternVL's dynamic tiling is left to the caller.
public final class InternVLVision: Sendable {
  public let encoder: VisionEncoder
  public let towerPrefix: String
  /// Where the projector's tensors are.
  public let projectorPrefix: String
  public let imageTokenIndex: Int?
  public let textHiddenSize: Int
  /// `vision_feature_layer`: a Python-style index into the tower's hidden states.
  public let featureLayer: Int
  public let dropsClassToken: Bool
  /// How many neighbouring patches, per side, one image token gathers: `1 / downsample_ratio`.
  public let scaleFactor: Int
  let norm: VisionEncoder.Norm
  let linear1: VisionEncoder.Linear
  let linear2: VisionEncoder.Linear
  let projectorActivation: VisionConfig.Activation

  /// The prefixes of the tower and projector in `source`: transformers' saved names or its
  /// in-memory `model.` ones.
  public static func prefixes(in source: any TensorSource) -> (tower: String, projector: String) {
    source.info(named: "model.vision_tower.embeddings.cls_token") != nil
      ? ("model.vision_tower.", "model.multi_modal_projector.")
      : ("vision_tower.", "multi_modal_projector.")
  }

  /// Reads the tower and projector of an `InternVLForConditionalGeneration` checkpoint.
  /// - Throws: `EngineError` for a missing `vision_config`, a `downsample_ratio` that is not the
  ///   inverse of a whole number dividing the patch grid, or weights of the wrong shape.
  public init(source: any TensorSource, config: ModelConfig) throws {
    guard let visionConfig = config.visionConfig else {
      throw EngineError.missingConfig(location: config.location, key: "vision_config")
    }
    let vision = try VisionConfig(visionConfig)
    (towerPrefix, projectorPrefix) = Self.prefixes(in: source)
    encoder = try VisionEncoder(source: source, config: vision, prefix: towerPrefix)
    featureLayer = config.raw["vision_feature_layer"]?.intValue ?? -1
    let strategy = config.raw["vision_feature_select_strategy"]?.stringValue ?? "default"
    guard strategy == "default" || strategy == "full" else {
      throw EngineError.unsupportedArchitecture(
        location: config.location, family: "vision_feature_select_strategy \(strategy)")
    }
    dropsClassToken = strategy == "default"
    let ratio = config.raw["downsample_ratio"]?.doubleValue ?? 0.5
    let scale = ratio > 0 ? (1 / ratio).rounded() : 0
    let grid = vision.imageSize / vision.patchSize
    guard scale >= 1, abs(scale * ratio - 1) < 1e-9, grid % Int(scale) == 0 else {
      throw EngineError.missingConfig(
        location: config.location,
        key: "downsample_ratio of 1/n with n dividing the \(grid)-patch grid (found \(ratio))")
    }
    scaleFactor = Int(scale)
    imageTokenIndex =
      config.raw["image_token_id"]?.intValue ?? config.raw["image_token_index"]?.intValue
    projectorActivation = try VisionConfig.activation(
      config.raw["projector_hidden_act"]?.stringValue ?? "gelu", location: config.location)
    let width = vision.hiddenSize * scaleFactor * scaleFactor
    let loader = WeightLoader(source: source, prefix: projectorPrefix)
    guard let info = source.info(named: projectorPrefix + "linear_1.weight"), info.shape.count == 2
    else {
      throw EngineError.missingTensor(
        location: source.location, tensor: projectorPrefix + "linear_1.weight")
    }
    let text = info.shape[0]
    textHiddenSize = text
    norm = VisionEncoder.Norm(
      weight: try loader.floats("layer_norm.weight", shape: [width]),
      bias: try loader.floats("layer_norm.bias", shape: [width]))
    linear1 = VisionEncoder.Linear(
      weight: try loader.floats("linear_1.weight", shape: [text, width]),
      bias: try loader.floats("linear_1.bias", shape: [text]), inputWidth: width, outputWidth: text)
    linear2 = VisionEncoder.Linear(
      weight: try loader.floats("linear_2.weight", shape: [text, text]),
      bias: try loader.floats("linear_2.bias", shape: [text]), inputWidth: text, outputWidth: text)
  }

  /// The tower's selected hidden state for one image, class token dropped as configured, pixel
  /// shuffled: the projector's input, `[tokens, hidden · scaleFactor²]`.
  public func shuffledFeatures(pixels: PixelTensor) throws -> [Float] {
    let output = try encoder.forward(pixels: pixels)
    let selected =
      featureLayer == -1 ? output.lastHiddenState : output.hiddenState(at: featureLayer)
    guard var selected else {
      throw EngineError.missingConfig(
        location: "vision_feature_layer \(featureLayer)",
        key: "a hidden state of \(output.hiddenStates.count)")
    }
    if dropsClassToken { selected.removeFirst(output.hiddenSize) }
    return try Idefics3Vision.pixelShuffle(
      selected, height: output.gridHeight, width: output.gridWidth, depth: output.hiddenSize,
      scale: scaleFactor)
  }

  /// The projector's layer norm on shuffled features, what its first linear reads.
  public func normalized(_ shuffled: [Float]) -> [Float] {
    Self.projectorNorm(shuffled, weight: norm.weight, bias: norm.bias)
  }

  /// The projector's layer norm (PyTorch's default epsilon 1e-5), rows of `weight.count` values.
  public static func projectorNorm(_ x: [Float], weight: [Float], bias: [Float]) -> [Float] {
    VisionKernels.layerNorm(x, width: weight.count, weight: weight, bias: bias, epsilon: 1e-5)
  }

  public func imageFeatures(pixels: PixelTensor) throws -> (count: Int, values: [Float]) {
    let normed = normalized(try shuffledFeatures(pixels: pixels))
    let rows = normed.count / linear1.inputWidth
    var hidden = linear1(normed, rows: rows)
    VisionKernels.activate(&hidden, projectorActivation)
    return (rows, linear2(hidden, rows: rows))
  }
}

extension InternVLVision: ImageFeatureModel {}
