import Foundation
import QCompute
import QEngine
import QFormats

extension SpeedQStage2 {
  /// What stage 2 did inside a conversion.
  public struct ConvertSummary: Sendable {
    public var images: Int
    public var tokens: Int
    /// Mean token cosine of the projector's output on the quantized tower against the FP
    /// projector on the FP tower, on the calibration images, before and after the refit.
    public var cosineBefore: Double
    public var cosineAfter: Double
    /// Whether the refit came from the resume file.
    public var resumed: Bool
  }

  /// Stage 2 inside `qconvert --method speedq`, after stage 1: refits the projector's `linear_2`
  /// (LLaVA, InternVL) or the connector's linear (Idefics3) so that, fed the tower quantized as
  /// the plan's codes say, it reproduces the FP projector on the FP tower (`refitProjector`,
  /// `refitLinear`), and puts the refit in the plan as replacement values.
  /// - Parameters:
  ///   - checkpointPath: where the refit is saved, and read back instead of refitting when it
  ///     exists and was made from the same images and tower codes.
  /// - Throws: `SpeedQError.invalidInput` for a checkpoint without its projector or with a
  ///   projector activation other than GELU; what the refit throws.
  public static func refitProjector(
    plan: inout ConvertPlan, checkpoint: Checkpoint, imagesFolder: String, limit: Int? = nil,
    checkpointPath: String? = nil
  ) throws -> ConvertSummary {
    let operation = "SpeedQ stage 2"
    let setup = try VisionSetup(checkpoint: checkpoint, imagesFolder: imagesFolder, limit: limit, operation: operation)
    // The tower as the plan stores it: stage 1's codes, dequantized.
    let quantizedTower = Self.quantizedTower(in: plan, prefix: setup.prefix)
    if case .idefics3(let scale) = setup.connector {
      return try refitConnector(
        plan: &plan, setup: setup, scale: scale, quantizedTower: quantizedTower, checkpointPath: checkpointPath)
    }
    let activation = setup.config.raw["projector_hidden_act"]?.stringValue ?? "gelu"
    guard activation == "gelu" else {
      throw SpeedQError.invalidInput(
        operation: operation, reason: "projector activation '\(activation)' is not the exact GELU the refit assumes")
    }
    let source = checkpoint.source
    func matrix(_ name: String) throws -> Matrix<Float> {
      guard let info = source.info(named: name), info.shape.count == 2 else {
        throw SpeedQError.invalidInput(
          operation: operation, reason: "'\(checkpoint.location)' has no 2-D tensor '\(name)'")
      }
      return try Matrix(rows: info.shape[0], columns: info.shape[1], elements: try source.floats(of: name))
    }
    let projector = setup.projectorPrefix
    let (linear1, linear2) = (projector + "linear_1.", projector + "linear_2.")
    let w1 = try matrix(linear1 + "weight")
    let w2 = try matrix(linear2 + "weight")
    let b1 = try source.floats(of: linear1 + "bias")
    let b2 = try source.floats(of: linear2 + "bias")

    let layer = setup.connector.featureLayer
    let dropsClassToken =
      (setup.config.raw["vision_feature_select_strategy"]?.stringValue ?? "default") == "default"
      && setup.vision.kind != .siglip
    let width = setup.vision.hiddenSize
    // InternVL: pixel shuffle, then the projector's layer norm, before linear_1.
    var shuffle: (scale: Int, norm: (weight: [Float], bias: [Float]))?
    if case .internVL(_, let scale) = setup.connector {
      let norm = (try source.floats(of: projector + "layer_norm.weight"), try source.floats(of: projector + "layer_norm.bias"))
      shuffle = (scale, norm)
    }
    func stacked(_ replacing: [String: [Float]]) throws -> Matrix<Float> {
      let perImage = try SpeedQStage1.features(
        encoder: setup.encoder, prefix: setup.prefix, images: setup.images, replacing: replacing, hiddenState: layer)
      var rows: [Float] = []
      for (image, output) in zip(setup.images, perImage) {
        var features = layer == -1 ? setup.encoder.lastHiddenState(fromBlockOutput: output) : output
        if dropsClassToken { features.removeFirst(width) }
        if let shuffle {
          let p = setup.encoder.config.patchSize
          let shuffled = try Idefics3Vision.pixelShuffle(
            features, height: image.height / p, width: image.width / p, depth: width, scale: shuffle.scale)
          features = InternVLVision.projectorNorm(shuffled, weight: shuffle.norm.weight, bias: shuffle.norm.bias)
        }
        rows += features
      }
      let columns = width * (shuffle.map { $0.scale * $0.scale } ?? 1)
      return try Matrix(rows: rows.count / max(columns, 1), columns: columns, elements: rows)
    }
    let fpFeatures = try stacked([:])
    let quantizedFeatures = try stacked(quantizedTower)

    let fingerprint = Self.fingerprint(images: setup.images.count, tokens: fpFeatures.rows, tower: quantizedTower)
    var refit: Refit
    var resumed = false
    if let path = checkpointPath, FileManager.default.fileExists(atPath: path) {
      refit = try loadRefit(from: path, fingerprint: fingerprint, outputs: w2.rows, hidden: w2.columns, hasBias: true)
      resumed = true
    } else {
      // Plain least squares when the tokens determine it; otherwise a little ridge toward the FP linear.
      let ridge = fpFeatures.rows > w2.columns ? 0 : 1e-3
      refit = try refitProjector(
        fpFeatures: fpFeatures, quantizedFeatures: quantizedFeatures, linear1Weight: w1, linear1Bias: b1,
        linear2Weight: w2, linear2Bias: b2, ridge: ridge)
      if let path = checkpointPath { try saveRefit(refit, fingerprint: fingerprint, to: path) }
    }
    let target = try project(fpFeatures, w1, b1, w2, b2)
    let before = try project(quantizedFeatures, w1, b1, w2, b2)
    let after = try project(quantizedFeatures, w1, b1, refit.weight, refit.bias)
    let outputs = w2.rows
    try plan.replace(linear2 + "weight", with: refit.weight.elements, reason: "stage 2 refit")
    try plan.replace(linear2 + "bias", with: refit.bias, reason: "stage 2 refit")
    return ConvertSummary(
      images: setup.images.count, tokens: fpFeatures.rows,
      cosineBefore: SpeedQStage1.meanCosine([target], [before], width: outputs),
      cosineAfter: SpeedQStage1.meanCosine([target], [after], width: outputs), resumed: resumed)
  }

  /// The tower as the plan stores it: stage 1's codes, dequantized, by tensor name.
  static func quantizedTower(in plan: ConvertPlan, prefix: String) -> [String: [Float]] {
    var tower: [String: [Float]] = [:]
    for entry in plan.entries where entry.info.name.hasPrefix(prefix) {
      if let codes = entry.precomputed { tower[entry.info.name] = codes.dequantize() }
    }
    return tower
  }

  /// What a resumed refit must share with the run that saved it: the images, and the tower it
  /// saw (the resume file of another stage 1 run is refused).
  static func fingerprint(images: Int, tokens: Int, tower: [String: [Float]]) -> String {
    var crc: UInt32 = 0
    for name in tower.keys.sorted() {
      crc = tower[name, default: []].withUnsafeBytes { CRC32C.checksum($0, continuing: crc) }
    }
    return "stage2 images=\(images) tokens=\(tokens) tower=\(CRC32C.formatted(crc))"
  }

  /// `GELU(X W1ᵀ + b1) W2ᵀ + b2`, row-major `[tokens, outputs]`.
  static func project(
    _ features: Matrix<Float>, _ w1: Matrix<Float>, _ b1: [Float], _ w2: Matrix<Float>, _ b2: [Float]
  ) throws -> [Float] {
    func double(_ m: Matrix<Float>) throws -> Matrix<Double> {
      try Matrix(rows: m.rows, columns: m.columns, elements: m.elements.map { Double($0) })
    }
    let hidden = try activated(try double(features), try double(w1), b1)
    let output = try hidden.matmul(try double(w2), transposeOther: true)
    let columns = output.columns
    return output.elements.enumerated().map { Float($0.element + Double(b2[$0.offset % columns])) }
  }

  static let fingerprintKey = "speedq.stage2.fingerprint"

  /// Writes the refit to a safetensors file, atomically (no bias tensor for a bias-free linear).
  static func saveRefit(_ refit: Refit, fingerprint: String, to path: String) throws {
    var plan = [TensorInfo(name: "weight", dtype: .f32, shape: [refit.weight.rows, refit.weight.columns])]
    if !refit.bias.isEmpty { plan.append(TensorInfo(name: "bias", dtype: .f32, shape: [refit.bias.count])) }
    let writer = try SafetensorsWriter(path: path, plan: plan, metadata: [fingerprintKey: fingerprint])
    for info in writer.order {
      let values = info.name == "weight" ? refit.weight.elements : refit.bias
      try values.withUnsafeBytes { try writer.append(name: info.name, bytes: $0) }
    }
    try writer.finish()
  }

  /// Reads what `saveRefit` wrote.
  /// - Throws: `SpeedQError.checkpoint` for a file of another run or tensors of other shapes.
  static func loadRefit(from path: String, fingerprint: String, outputs: Int, hidden: Int, hasBias: Bool) throws
    -> Refit
  {
    let file = try SafetensorsFile(path: path)
    guard file.metadata[fingerprintKey] == fingerprint else {
      throw SpeedQError.checkpoint(
        path: path, reason: "was saved by another stage 2 run ('\(file.metadata[fingerprintKey] ?? "none")')")
    }
    guard file.info(named: "weight")?.shape == [outputs, hidden],
      hasBias ? file.info(named: "bias")?.shape == [outputs] : file.info(named: "bias") == nil
    else {
      throw SpeedQError.checkpoint(
        path: path, reason: "does not hold a [\(outputs), \(hidden)] weight\(hasBias ? " and its bias" : " alone")")
    }
    return Refit(
      weight: try Matrix(rows: outputs, columns: hidden, elements: try file.floats(of: "weight")),
      bias: hasBias ? try file.floats(of: "bias") : [])
  }
}
