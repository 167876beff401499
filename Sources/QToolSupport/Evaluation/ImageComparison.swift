import Foundation
import QCompute
import QEngine
import QFormats

/// Two checkpoints' vision towers run on the same images (`qdiff --images`): the cosine and
/// relative L2 of each image's final features, of every hidden state of the towers, and for
/// vision-language models of the projector's output.
public enum ImageComparison {
  /// One side's tower, with its projector when it is a vision-language model (LLaVA, Idefics3,
  /// InternVL), and its preprocessing.
  struct VisionSide {
    let encoder: VisionEncoder
    let projector: (any ImageFeatureModel)?
    let preprocessor: ImagePreprocessor
    let side: ImageComparisonResult.Side
  }

  /// The image files of `paths`: a file as given, a folder's PNG and JPEG files sorted by name.
  /// - Throws: `EvaluationError.noImages` for a folder without images or a missing path.
  public static func imageFiles(_ paths: [String]) throws -> [String] {
    var files: [String] = []
    for path in paths {
      var isDirectory: ObjCBool = false
      // A link loop or a folder that cannot be looked into is said so, not called missing.
      do {
        _ = try SideFile.exists(path)
      } catch {
        throw SideFile.Failure(path: path, problem: error)
      }
      guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
        throw EvaluationError.noImages(path: path)
      }
      guard isDirectory.boolValue else {
        files.append(path)
        continue
      }
      let names = (try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []
      let images = names.filter {
        ["png", "jpg", "jpeg"].contains(($0 as NSString).pathExtension.lowercased())
      }.sorted()
      guard !images.isEmpty else { throw EvaluationError.noImages(path: path) }
      files += images.map { (path as NSString).appendingPathComponent($0) }
    }
    guard !files.isEmpty else { throw EvaluationError.noImages(path: paths.joined(separator: " ")) }
    return files
  }

  /// Runs both sides' towers on every image of `files` (see `imageFiles(_:)`).
  ///
  /// Each side preprocesses an image as it would for itself (its folder's
  /// `preprocessor_config.json`, or the tower family's defaults). Packs are dequantized on the
  /// fly. The checkpoints are `same` when every image's final features (and projector output)
  /// have a relative L2 at or below `tolerance`.
  /// - Throws: `EvaluationError.noVisionTower` for a checkpoint with neither a `vision_config`
  ///   nor a vision-tower config, `.incomparableImageFeatures` when no output of the two sides
  ///   has the same shape, image and engine errors.
  public static func compare(
    old: DiffInput, new: DiffInput, files: [String], tolerance: Double
  ) throws -> ImageComparisonResult {
    let start = Date()
    let a = try load(old)
    let b = try load(new)
    let sameLayout = a.side.layers == b.side.layers && a.side.hiddenSize == b.side.hiddenSize
    var layerSums = [Double](repeating: 0, count: sameLayout ? a.side.layers + 1 : 0)
    var layerCounts = [Int](repeating: 0, count: layerSums.count)
    var layersNote: String? =
      sameLayout
      ? nil
      : "the towers differ in depth or width (\(a.side.layers) x \(a.side.hiddenSize) and \(b.side.layers) x \(b.side.hiddenSize))"
    var images: [ImageComparisonResult.PerImage] = []
    var same = true
    for file in files {
      let image = try Image.load(path: file)
      let oldOutput = try a.encoder.forward(pixels: a.preprocessor(image))
      let newOutput = try b.encoder.forward(pixels: b.preprocessor(image))
      var entry = ImageComparisonResult.PerImage(file: file, tokens: oldOutput.tokenCount)
      var compared = false
      if oldOutput.tokenCount == newOutput.tokenCount, oldOutput.hiddenSize == newOutput.hiddenSize
      {
        let metrics = Self.metrics(
          oldOutput.lastHiddenState, newOutput.lastHiddenState, width: oldOutput.hiddenSize)
        entry.cosine = metrics.cosine
        entry.relativeL2 = metrics.relativeL2
        entry.maxAbsDiff = metrics.maxAbsDiff
        same = same && (metrics.relativeL2.map { $0 <= tolerance } ?? false)
        compared = true
        if sameLayout {
          for (index, state) in oldOutput.hiddenStates.enumerated()
          where index < newOutput.hiddenStates.count {
            if let cosine = Self.metrics(
              state, newOutput.hiddenStates[index], width: oldOutput.hiddenSize
            ).cosine {
              layerSums[index] += cosine
              layerCounts[index] += 1
            }
          }
        }
      } else {
        same = false
        layersNote =
          "the towers give \(oldOutput.tokenCount) x \(oldOutput.hiddenSize) and \(newOutput.tokenCount) x \(newOutput.hiddenSize) features"
      }
      if let oldProjector = a.projector, let newProjector = b.projector {
        let x = try oldProjector.imageFeatures(pixels: a.preprocessor(image))
        let y = try newProjector.imageFeatures(pixels: b.preprocessor(image))
        if x.count == y.count, x.values.count == y.values.count {
          let metrics = Self.metrics(
            x.values, y.values, width: x.count > 0 ? x.values.count / x.count : 0)
          entry.projectorCosine = metrics.cosine
          entry.projectorRelativeL2 = metrics.relativeL2
          same = same && (metrics.relativeL2.map { $0 <= tolerance } ?? false)
          compared = true
        }
      }
      guard compared else {
        throw EvaluationError.incomparableImageFeatures(
          file: file, old: [oldOutput.tokenCount, oldOutput.hiddenSize],
          new: [newOutput.tokenCount, newOutput.hiddenSize])
      }
      images.append(entry)
    }
    let cosines = images.compactMap(\.cosine)
    let projectorCosines = images.compactMap(\.projectorCosine)
    let relativeL2s = images.flatMap { [$0.relativeL2, $0.projectorRelativeL2].compactMap { $0 } }
    return ImageComparisonResult(
      old: a.side, new: b.side, images: images,
      meanCosine: cosines.isEmpty ? nil : cosines.reduce(0, +) / Double(cosines.count),
      minCosine: cosines.min(),
      maxRelativeL2: relativeL2s.max(),
      meanProjectorCosine: projectorCosines.isEmpty
        ? nil : projectorCosines.reduce(0, +) / Double(projectorCosines.count),
      layers: layerSums.indices.map { index in
        ImageComparisonResult.LayerCosine(
          layer: index,
          cosine: layerCounts[index] > 0 ? layerSums[index] / Double(layerCounts[index]) : nil)
      },
      layersNote: layersNote, same: same, seconds: Date().timeIntervalSince(start))
  }

  /// The tower (and projector) of a vision-language checkpoint, or a standalone DINOv2, CLIP or
  /// SigLIP vision tower, read through the input's source (packs dequantized).
  static func load(_ input: DiffInput) throws -> VisionSide {
    let location = input.checkpoint.location
    guard let config = input.config else { throw EvaluationError.missingConfig(location: location) }
    let vision: VisionConfig
    var projector: (any ImageFeatureModel)?
    let encoder: VisionEncoder
    if let visionConfig = config.visionConfig {
      vision = try VisionConfig(visionConfig)
      let model = try VisionLanguageModel.imageFeatureModel(source: input.source, config: config)
      projector = model
      encoder = model.encoder
    } else {
      guard
        ["dinov2", "clip_vision_model", "clip", "siglip_vision_model", "siglip"].contains(
          config.modelType ?? "")
      else {
        throw EvaluationError.noVisionTower(location: location, modelType: config.modelType)
      }
      vision = try VisionConfig(config)
      encoder = try VisionEncoder(
        source: input.source, config: vision,
        prefix: towerPrefix(of: input.source, kind: vision.kind))
    }
    var preprocessor = ImagePreprocessor.fallback(for: vision)
    if let folder = input.checkpoint.folder {
      let path = (folder as NSString).appendingPathComponent("preprocessor_config.json")
      if let data = FileManager.default.contents(atPath: path) {
        preprocessor = try ImagePreprocessor(preprocessorConfig: data, location: path)
      }
    }
    let side = ImageComparisonResult.Side(
      kind: projector == nil ? "vision-tower" : "vision-language", tower: vision.kind.rawValue,
      layers: vision.layerCount, hiddenSize: vision.hiddenSize,
      projectorWidth: projector?.textHiddenSize,
      imageSize: vision.imageSize)
    return VisionSide(encoder: encoder, projector: projector, preprocessor: preprocessor, side: side)
  }

  /// What precedes `embeddings.` in a standalone tower's names: `""` for `Dinov2Model`,
  /// `vision_model.` for `CLIPVisionModel` and `SiglipVisionModel`.
  static func towerPrefix(of source: any TensorSource, kind: VisionConfig.Kind) -> String {
    let suffix =
      kind == .dinov2
      ? "embeddings.patch_embeddings.projection.weight" : "embeddings.patch_embedding.weight"
    guard let name = source.tensors.first(where: { $0.name.hasSuffix(suffix) })?.name else {
      return kind == .dinov2 ? "" : "vision_model."
    }
    return String(name.dropLast(suffix.count))
  }

  /// Mean token cosine (rows of `width`; rows where either side is zero left out), relative L2
  /// ||a - b|| / ||a|| and largest absolute difference, in Double; non-finite results are `nil`.
  static func metrics(
    _ a: [Float], _ b: [Float], width: Int
  ) -> (cosine: Double?, relativeL2: Double?, maxAbsDiff: Double?) {
    guard a.count == b.count, width > 0, a.count % width == 0 else { return (nil, nil, nil) }
    var cosineSum: Double = 0
    var counted = 0
    var difference: Double = 0
    var reference: Double = 0
    var largest: Double = 0
    a.withUnsafeBufferPointer { x in
      b.withUnsafeBufferPointer { y in
        for row in 0..<(a.count / width) {
          var dot: Double = 0
          var xx: Double = 0
          var yy: Double = 0
          for index in (row &* width)..<((row &+ 1) &* width) {
            let u = Double(x[index])
            let v = Double(y[index])
            dot += u * v
            xx += u * u
            yy += v * v
            let d = u - v
            difference += d * d
            largest = max(largest, abs(d))
          }
          reference += xx
          // sqrt(xx * yy) rather than sqrt(xx) * sqrt(yy): identical rows give exactly 1.
          guard xx > 0, yy > 0 else { continue }
          cosineSum += dot / (xx * yy).squareRoot()
          counted += 1
        }
      }
    }
    func finite(_ value: Double?) -> Double? { value.flatMap { $0.isFinite ? $0 : nil } }
    let relative: Double? =
      difference == 0 ? 0 : reference > 0 ? (difference / reference).squareRoot() : nil
    return (
      finite(counted > 0 ? cosineSum / Double(counted) : nil), finite(relative), finite(largest)
    )
  }
}
