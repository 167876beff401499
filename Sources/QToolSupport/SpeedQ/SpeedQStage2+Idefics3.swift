import Foundation
import QCompute
import QEngine
import QFormats

extension SpeedQStage2 {
  /// Stage 2 for Idefics3 and SmolVLM: the connector's one linear
  /// (`model.connector.modality_projection.proj`, no bias) refitted so that, fed the pixel-shuffled
  /// last hidden state of the tower quantized as the plan's codes say, it reproduces the FP
  /// connector on the FP tower (`refitLinear`).
  static func refitConnector(
    plan: inout ConvertPlan, setup: VisionSetup, scale: Int, quantizedTower: [String: [Float]],
    checkpointPath: String?
  ) throws -> ConvertSummary {
    let operation = "SpeedQ stage 2"
    let name = Idefics3Vision.projectionName
    let source = setup.checkpoint.source
    guard let info = source.info(named: name), info.shape.count == 2 else {
      throw SpeedQError.invalidInput(
        operation: operation, reason: "'\(setup.checkpoint.location)' has no 2-D tensor '\(name)'")
    }
    let weight = try Matrix(
      rows: info.shape[0], columns: info.shape[1], elements: try source.floats(of: name))
    let fpInputs = try shuffledFeatures(setup: setup, scale: scale, replacing: [:])
    let quantizedInputs = try shuffledFeatures(
      setup: setup, scale: scale, replacing: quantizedTower)
    guard fpInputs.columns == weight.columns else {
      throw SpeedQError.invalidInput(
        operation: operation,
        reason:
          "'\(name)' takes \(weight.columns) inputs, the shuffled tower gives \(fpInputs.columns)")
    }
    let fingerprint = Self.fingerprint(
      images: setup.images.count, tokens: fpInputs.rows, tower: quantizedTower)
    var refit: Refit
    var resumed = false
    if let path = checkpointPath, FileManager.default.fileExists(atPath: path) {
      refit = try loadRefit(
        from: path, fingerprint: fingerprint, outputs: weight.rows, hidden: weight.columns,
        hasBias: false)
      resumed = true
    } else {
      // Plain least squares when the tokens determine it; otherwise a little ridge toward the FP linear.
      let ridge = fpInputs.rows > weight.columns ? 0 : 1e-3
      refit = try refitLinear(
        fpInputs: fpInputs, quantizedInputs: quantizedInputs, weight: weight, ridge: ridge)
      if let path = checkpointPath { try saveRefit(refit, fingerprint: fingerprint, to: path) }
    }
    let target = try fpInputs.matmul(weight, transposeOther: true).elements
    let before = try quantizedInputs.matmul(weight, transposeOther: true).elements
    let after = try quantizedInputs.matmul(refit.weight, transposeOther: true).elements
    try plan.replace(name, with: refit.weight.elements, reason: "stage 2 refit")
    return ConvertSummary(
      images: setup.images.count, tokens: fpInputs.rows,
      cosineBefore: SpeedQStage1.meanCosine([target], [before], width: weight.rows),
      cosineAfter: SpeedQStage1.meanCosine([target], [after], width: weight.rows), resumed: resumed)
  }

  /// The connector's input for every calibration image, stacked: the tower's last hidden state
  /// (after its final norm) with `replacing` in place of the named linear weights, pixel-shuffled.
  static func shuffledFeatures(setup: VisionSetup, scale: Int, replacing: [String: [Float]]) throws
    -> Matrix<Float>
  {
    let encoder = setup.encoder
    let width = encoder.config.hiddenSize
    var rows: [Float] = []
    for (image, output) in zip(
      setup.images,
      try SpeedQStage1.features(
        encoder: encoder, prefix: setup.prefix, images: setup.images, replacing: replacing,
        hiddenState: -1))
    {
      let gridHeight = image.height / encoder.config.patchSize
      let gridWidth = image.width / encoder.config.patchSize
      rows += try Idefics3Vision.pixelShuffle(
        encoder.lastHiddenState(fromBlockOutput: output), height: gridHeight, width: gridWidth,
        depth: width,
        scale: scale)
    }
    let columns = width * scale * scale
    return try Matrix(rows: rows.count / columns, columns: columns, elements: rows)
  }
}
