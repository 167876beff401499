import Foundation
import QCompute
import QEngine
import QFormats

extension SpeedQStage1 {
  /// What stage 1 did inside a conversion.
  public struct ConvertSummary: Sendable {
    public var images: Int
    public var tensors: Int
    /// Mean token cosine of the tower's feature layer, quantized against FP, on the calibration
    /// images, for round-to-nearest on the same grids and for stage 1.
    public var roundToNearestCosine: Double?
    public var cosine: Double?
  }

  /// Stage 1 inside `qconvert --method speedq`: quantizes the vision tower of a LLaVA-style
  /// checkpoint on the images of `imagesFolder` with the grids the plan gives its linears (the
  /// vision policy), and stores the codes in the plan.
  /// - Parameters:
  ///   - limit: use at most this many images (in name order).
  ///   - measure: also compute the feature cosines of `ConvertSummary` (one more pass per image).
  /// - Throws: `SpeedQError.invalidInput` for a checkpoint without a vision tower or a folder
  ///   without images; what stage 1 throws.
  public static func quantizeVisionTower(
    plan: inout ConvertPlan, checkpoint: Checkpoint, imagesFolder: String, limit: Int? = nil,
    configuration: Configuration, measure: Bool = false, progress: (Progress) -> Void = { _ in }
  ) throws -> ConvertSummary {
    let setup = try VisionSetup(checkpoint: checkpoint, imagesFolder: imagesFolder, limit: limit, operation: "SpeedQ stage 1")
    let (vision, encoder, prefix, images) = (setup.vision, setup.encoder, setup.prefix, setup.images)
    var towerLinears = Set<String>()
    for index in 0..<encoder.blockCount {
      towerLinears.formUnion(try encoder.block(at: index, prefix: prefix).linearShapes.keys)
    }
    // The rest of the tower (the patch embedding) stays in full precision, as SPEED-Q keeps it
    // (speedq.md 1.4), unless a rule asked otherwise: stage 2 then refits to the tower the pack holds.
    let towerRest = plan.entries.filter {
      $0.info.name.hasPrefix(prefix) && !towerLinears.contains($0.info.name) && $0.spec != nil
        && !$0.reason.hasPrefix("rule")
    }
    plan.keepAsStored(towerRest.map(\.info.name), reason: "vision tower outside its blocks, full precision")
    var grids: [String: CalibratedGrid] = [:]
    for entry in plan.entries where towerLinears.contains(entry.info.name) {
      guard let spec = entry.spec, let grid = ConvertCalibration.calibratedGrid(for: spec) else { continue }
      grids[entry.info.name] = grid
    }
    let stage = try SpeedQStage1(
      encoder: encoder, prefix: prefix, images: images, grids: grids, configuration: configuration)
    let results = try stage.run(progress: progress)
    for index in plan.entries.indices {
      let entry = plan.entries[index]
      guard let quantized = results[entry.info.name], let spec = entry.spec else { continue }
      try plan.entries[index].respec(
        spec, reason: entry.reason + ", stage 1 \(configuration.method.rawValue)", location: plan.location)
      plan.entries[index].precomputed = quantized
    }
    var summary = ConvertSummary(images: images.count, tensors: results.count)
    if measure {
      let layer = setup.connector.featureLayer
      var rounded: [String: [Float]] = [:]
      for (name, grid) in grids {
        guard let shape = checkpoint.source.info(named: name)?.shape, shape.count == 2 else { continue }
        let weight = try checkpoint.source.floats(of: name)
        rounded[name] = try weight.withUnsafeBufferPointer {
          try grid.roundToNearest($0, rows: shape[0], columns: shape[1])
        }.dequantize()
      }
      let fp = try features(encoder: encoder, prefix: prefix, images: images, replacing: [:], hiddenState: layer)
      for (replacing, isStage) in [(rounded, false), (results.mapValues { $0.dequantize() }, true)] {
        let quantized = try features(
          encoder: encoder, prefix: prefix, images: images, replacing: replacing, hiddenState: layer)
        let cosine = meanCosine(fp, quantized, width: vision.hiddenSize)
        if isStage { summary.cosine = cosine } else { summary.roundToNearestCosine = cosine }
      }
    }
    return summary
  }
}

/// What stages 1 and 2 read from a vision-language checkpoint: its tower, how the tower's output
/// reaches the language model, and the calibration images through the checkpoint's preprocessor.
struct VisionSetup {
  var checkpoint: Checkpoint
  var config: ModelConfig
  var vision: VisionConfig
  var encoder: VisionEncoder
  /// The prefix of the tower's tensors.
  var prefix: String
  var connector: Connector
  /// Where the projector's tensors are (LLaVA, InternVL).
  var projectorPrefix = "multi_modal_projector."
  var images: [PixelTensor]

  /// The path from the tower to the language model.
  enum Connector {
    /// LLaVA: the hidden state `vision_feature_layer`, then `linear_1 → GELU → linear_2`.
    case llava(featureLayer: Int)
    /// Idefics3 and SmolVLM: the last hidden state, pixel-shuffled by `scale`, then one
    /// bias-free linear.
    case idefics3(scale: Int)
    /// InternVL: the hidden state `vision_feature_layer`, pixel-shuffled by `scale`, then
    /// `layer_norm → linear_1 → GELU → linear_2`.
    case internVL(featureLayer: Int, scale: Int)

    /// The hidden state (Python-style index) stage 1 measures its cosine on: the one the
    /// projector reads (the last block's output for Idefics3, before its final norm).
    var featureLayer: Int {
      switch self {
      case .llava(let layer), .internVL(let layer, _): layer
      case .idefics3: -1
      }
    }
  }

  /// - Throws: `SpeedQError.invalidInput` for a checkpoint without a vision tower or a folder
  ///   without images; what reading the tower or the images throws.
  init(checkpoint: Checkpoint, imagesFolder: String, limit: Int?, operation: String) throws {
    self.checkpoint = checkpoint
    guard let data = checkpoint.configData else {
      throw SpeedQError.invalidInput(operation: operation, reason: "'\(checkpoint.location)' has no config.json")
    }
    config = try ModelConfig(data: data, location: checkpoint.configPath ?? checkpoint.location)
    guard let visionConfig = config.visionConfig else {
      throw SpeedQError.invalidInput(
        operation: operation, reason: "'\(checkpoint.location)' is not a vision-language model (no 'vision_config')")
    }
    vision = try VisionConfig(visionConfig)
    let names = Set(checkpoint.source.tensors.map(\.name))
    switch config.modelType {
    case "idefics3", "smolvlm":
      prefix = Idefics3Vision.prefix
      connector = .idefics3(scale: config.raw["scale_factor"]?.intValue ?? 2)
    case "internvl":
      (prefix, projectorPrefix) = InternVLVision.prefixes(in: checkpoint.source)
      let ratio = config.raw["downsample_ratio"]?.doubleValue ?? 0.5
      connector = .internVL(
        featureLayer: config.raw["vision_feature_layer"]?.intValue ?? -1,
        scale: ratio > 0 ? Int((1 / ratio).rounded()) : 0)
    default:
      // LLaVA's layout, as `LLaVAVision` reads it, or with transformers' `model.` wrapping.
      connector = .llava(featureLayer: config.raw["vision_feature_layer"]?.intValue ?? -2)
      prefix =
        vision.kind == .dinov2
        ? (names.contains("model.vision_tower.embeddings.cls_token") ? "model.vision_tower." : "vision_tower.")
        : (names.contains("model.vision_tower.vision_model.embeddings.patch_embedding.weight")
          ? "model.vision_tower.vision_model." : "vision_tower.vision_model.")
    }
    encoder = try VisionEncoder(source: checkpoint.source, config: vision, prefix: prefix)
    var preprocessor = ImagePreprocessor.fallback(for: vision)
    if let folder = checkpoint.folder {
      let path = (folder as NSString).appendingPathComponent("preprocessor_config.json")
      if let data = FileManager.default.contents(atPath: path) {
        preprocessor = try ImagePreprocessor(preprocessorConfig: data, location: path)
      }
    }
    images = try SpeedQStage1.images(inFolder: imagesFolder, preprocessor: preprocessor, limit: limit)
  }
}
