import QFormats

/// The image half of an Idefics3 or SmolVLM checkpoint: the SigLIP-style tower under
/// `model.vision_model.`, its last hidden state (after the post-layer norm) pixel-shuffled by
/// `scale_factor`, and the connector's bias-free linear `model.connector.modality_projection.proj`.
///
/// One image is one tile of the tower's `image_size`; Idefics3's processor splits larger images
/// into tiles, which is left to the caller.
public final class Idefics3Vision: Sendable {
  public let encoder: VisionEncoder
  /// Where the tower's tensors are.
  public static let prefix = "model.vision_model."
  public var towerPrefix: String { Self.prefix }
  public let imageTokenIndex: Int?
  public let textHiddenSize: Int
  /// How many neighbouring patches, per side, one image token gathers.
  public let scaleFactor: Int
  /// `[textHiddenSize, hidden * scaleFactor²]`.
  let projection: VisionEncoder.Linear

  public static let projectionName = "model.connector.modality_projection.proj.weight"

  /// Reads the tower and connector of an `Idefics3ForConditionalGeneration` (or SmolVLM) checkpoint.
  /// - Throws: `EngineError` for a missing `vision_config`, a grid the scale factor does not
  ///   divide, or weights of the wrong shape.
  public init(source: any TensorSource, config: ModelConfig) throws {
    guard let visionConfig = config.visionConfig else {
      throw EngineError.missingConfig(location: config.location, key: "vision_config")
    }
    let vision = try VisionConfig(visionConfig)
    encoder = try VisionEncoder(source: source, config: vision, prefix: Self.prefix)
    scaleFactor = config.raw["scale_factor"]?.intValue ?? 2
    let grid = vision.imageSize / vision.patchSize
    guard scaleFactor > 0, grid % scaleFactor == 0 else {
      throw EngineError.missingConfig(
        location: config.location,
        key: "scale_factor dividing the \(grid)-patch grid (found \(scaleFactor))")
    }
    imageTokenIndex = config.raw["image_token_id"]?.intValue
    guard let info = source.info(named: Self.projectionName), info.shape.count == 2 else {
      throw EngineError.missingTensor(location: source.location, tensor: Self.projectionName)
    }
    let width = vision.hiddenSize * scaleFactor * scaleFactor
    textHiddenSize = info.shape[0]
    projection = VisionEncoder.Linear(
      weight: try WeightLoader(source: source, prefix: "").floats(
        Self.projectionName, shape: [textHiddenSize, width]),
      bias: nil, inputWidth: width, outputWidth: textHiddenSize)
  }

  /// The tower's `last_hidden_state` for one image, `[patches, hidden]`.
  public func towerFeatures(pixels: PixelTensor) throws -> VisionOutput {
    try encoder.forward(pixels: pixels)
  }

  public func imageFeatures(pixels: PixelTensor) throws -> (count: Int, values: [Float]) {
    let output = try encoder.forward(pixels: pixels)
    let shuffled = try Self.pixelShuffle(
      output.lastHiddenState, height: output.gridHeight, width: output.gridWidth,
      depth: output.hiddenSize,
      scale: scaleFactor)
    let rows = shuffled.count / projection.inputWidth
    return (rows, projection(shuffled, rows: rows))
  }

  /// Idefics3's `pixel_shuffle`, which InternVL's computes as well.
  ///
  /// The `scale × scale` neighbourhood of patches at `(i, j)` of the coarse grid becomes one row,
  /// `(a·scale + b)·depth + c` holding channel `c` of patch `(i·scale + a, j·scale + b)`. Rows are
  /// in the coarse grid's row-major order.
  /// - Throws: `EngineError.unexpectedShape` when the grid is not square or `scale` does not divide it.
  public static func pixelShuffle(_ x: [Float], height: Int, width: Int, depth: Int, scale: Int)
    throws -> [Float]
  {
    guard height == width, scale > 0, height % scale == 0, x.count == height * width * depth else {
      throw EngineError.unexpectedShape(
        location: "pixel shuffle", tensor: "last_hidden_state", expected: [height * height, depth],
        found: [depth == 0 ? 0 : x.count / depth, depth])
    }
    let coarse = height / scale
    let rowWidth = depth * scale * scale
    var out = [Float](repeating: 0, count: x.count)
    for i in 0..<coarse {
      for j in 0..<coarse {
        let row = (i * coarse + j) * rowWidth
        for a in 0..<scale {
          for b in 0..<scale {
            let patch = (i * scale + a) * width + j * scale + b
            let target = row + (a * scale + b) * depth
            out.replaceSubrange(
              target..<(target + depth), with: x[(patch * depth)..<((patch + 1) * depth)])
          }
        }
      }
    }
    return out
  }
}

extension Idefics3Vision: ImageFeatureModel {}
