import Foundation
import QEngine
import QFormats
import QToolSupport

extension QConvert {
  /// SPEED-Q's stage 1 when `--calib-images` is given: the vision tower quantized block by
  /// block on the images, before the language model is trained. Finished blocks are kept in
  /// `<qat-checkpoint>.stage1` when there is a `--qat-checkpoint`, and resumed from there.
  /// Stage 2 follows unless `--no-projector-refit`.
  func quantizeVisionTower(plan: inout ConvertPlan) throws {
    guard let calibImages else { return }
    var stderr = StandardError()
    let quiet = self.quiet
    let checkpoint = try Checkpoint.open(input).dequantized()
    let summary = try SpeedQStage1.quantizeVisionTower(
      plan: &plan, checkpoint: checkpoint, imagesFolder: calibImages, limit: calibImageCount,
      configuration: .init(
        method: .adaRound, checkpointPath: qatCheckpoint.map { $0 + ".stage1" },
        adaRound: AdaRound.Options(iterations: visionIterations)),
      measure: !quiet
    ) { step in
      var stderr = StandardError()
      if !quiet {
        let error = String(format: "%.3g", step.reconstructionError)
        print(
          "qconvert: vision block \(step.block + 1)/\(step.blocks) output error \(error)\(step.resumed ? " (resumed)" : "")",
          to: &stderr)
      }
    }
    if !quiet {
      let cosines = [summary.roundToNearestCosine, summary.cosine].map { $0.map { String(format: "%.4f", $0) } ?? "-" }
      print(
        "qconvert: vision tower: \(summary.tensors) linears on \(summary.images) images; feature cosine to FP "
          + "\(cosines[1]) (round-to-nearest \(cosines[0]))", to: &stderr)
    }
    if !noProjectorRefit { try refitProjector(plan: &plan, checkpoint: checkpoint, images: calibImages) }
  }

  /// SPEED-Q's stage 2: the projector's second linear refitted to the quantized tower, kept in
  /// `<qat-checkpoint>.stage2` when there is a `--qat-checkpoint`, and resumed from there.
  func refitProjector(plan: inout ConvertPlan, checkpoint: Checkpoint, images: String) throws {
    let summary = try SpeedQStage2.refitProjector(
      plan: &plan, checkpoint: checkpoint, imagesFolder: images, limit: calibImageCount,
      checkpointPath: qatCheckpoint.map { $0 + ".stage2" })
    guard !quiet else { return }
    var stderr = StandardError()
    print(
      "qconvert: projector refit on \(summary.tokens) tokens of \(summary.images) image\(summary.images == 1 ? "" : "s")\(summary.resumed ? " (resumed)" : ""); "
        + "output cosine to FP " + String(format: "%.6f -> %.6f", summary.cosineBefore, summary.cosineAfter),
      to: &stderr)
  }
}
