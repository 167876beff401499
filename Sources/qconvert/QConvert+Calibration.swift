import ArgumentParser
import Foundation
import QCompute
import QFormats
import QToolSupport

extension QConvert {
  /// The grids `--sensitivity` and `--target-bpw` weigh: affine at 2, 3, 4 and 8 bits, or under
  /// SPEED-Q the bilevel grids its training takes (w2g16g16, then groups of 32 with 128 scales
  /// per second-level chunk, as w4g32g128).
  var candidateGrids: [CalibratedGrid] {
    guard method != .speedq else {
      return [.w2g16g16, .init(bits: 3, groupSize: 32, scaleGroupSize: 128), .w4g32g128,
        .init(bits: 8, groupSize: 32, scaleGroupSize: 128)].map { .bilevel($0) }
    }
    return [2, 3, 4, 8].map { .affine(bits: $0, groupSize: groupSize == 0 ? .perChannel : .elements(groupSize)) }
  }

  /// The model and the windows of `calib` it runs on, announced on stderr as `purpose`.
  func openCalibration(_ calib: String, checkpoint: Checkpoint, for purpose: String) throws -> ConvertCalibration {
    let calibration = try ConvertCalibration(
      checkpoint: checkpoint,
      settings: .init(
        textFile: calib, field: calibField, context: calibContext, windows: calibWindows, actOrder: actOrder))
    if !quiet {
      var stderr = StandardError()
      print("qconvert: \(purpose) on \(calibration.windows.count) windows of \(calibContext) tokens from \(calib)", to: &stderr)
    }
    return calibration
  }

  /// Loads the calibration data when asked, prints `--sensitivity`, and applies `--target-bpw`.
  func calibrate(checkpoint: Checkpoint, plan: inout ConvertPlan) throws -> ConvertCalibration? {
    guard let calib else { return nil }
    let calibration = try openCalibration(calib, checkpoint: checkpoint, for: "calibrating")
    guard sensitivity || targetBpw != nil else { return calibration }
    let grams = reporter("Gram matrices", total: calibration.windows.count, unit: "windows")
    let report = try calibration.sensitivity(candidates: candidateGrids) { done, _ in grams.update(done) }
    grams.finish()
    if sensitivity {
      var output = StandardOutput()
      if format == .json {
        print(String(decoding: try report.jsonData(), as: UTF8.self), to: &output)
      } else {
        print(report.renderTable(), terminator: "", to: &output)
      }
      return calibration
    }
    if let targetBpw {
      let quantized = Set(plan.entries.filter { $0.spec != nil }.map(\.info.name))
      let grids = try report.allocate(bitsPerWeight: targetBpw, among: quantized)
      try ConvertCalibration.apply(
        allocation: grids, to: &plan, method: method == .gptq ? .gptq : method == .speedq ? .speedq : .rtn,
        scaleDType: plan.settings.scaleDType)
    }
    return calibration
  }

  /// A progress line for one stage, in the `--progress` style (none with `--quiet`).
  func reporter(_ stage: String, total: Int?, unit: String, baseline: Int = 0) -> ProgressReporter {
    ProgressReporter(
      tool: "qconvert", stage: stage, total: total, unit: unit, style: quiet ? .none : progress, baseline: baseline)
  }

  /// GPTQ, or the Gram-weighted clip search, on the planned decoder linears.
  func quantizeCalibrated(
    _ calibration: ConvertCalibration?, plan: inout ConvertPlan, source: any TensorSource, config: ModelConfig?
  ) throws {
    guard let calibration else { return }
    if method == .speedq {
      guard let config else {
        throw ConvertError.invalidOption(option: input, reason: "has no config.json, which training needs")
      }
      try quantizeVisionTower(plan: &plan)
      let configuration = SpeedQConfiguration(
        grid: bits == 2 ? .w2g16g16 : .w4g32g128, learningRate: qatLr, steps: qatSteps,
        checkpointPath: qatCheckpoint, stopAfterStep: qatStopAfter, trainsNormsAndBiases: !qatFreezeNorms,
        initialisation: qatInit)
      let grams = reporter("Gram matrices for the clip search", total: nil, unit: "windows")
      var blocks: ProgressReporter? = nil
      // Started at the first step: the Gram matrices and GPTQ before it, or the steps a resumed
      // run has already done, would otherwise count in the rate and the ETA.
      var training: ProgressReporter? = nil
      defer { training?.finish() }
      try calibration.speedQ(
        plan: &plan, source: source, config: config, configuration: configuration,
        gramProgress: { done, total in
          grams.update(done)
          if done == total { grams.finish() }
        },
        gptqProgress: { step in
          let line = blocks ?? reporter("GPTQ initialisation", total: step.blocks, unit: "blocks")
          blocks = line
          line.update(step.block, detail: step.tensor)
        }
      ) { step in
        if let line = blocks {  // GPTQ's initialisation is over once training reports
          line.finish()
          blocks = nil
        }
        let line = training ?? reporter("training step", total: qatSteps, unit: "", baseline: step.step)
        training = line
        line.update(
          step.step, detail: "loss \(String(format: "%.3g", Double(step.loss))), lr \(String(format: "%.2g", Double(step.learningRate)))")
      }
      return
    }
    if method == .adaround {
      let quiet = self.quiet
      let every = max(1, adaroundIterations / 4)
      try calibration.adaRound(
        plan: &plan, iterations: adaroundIterations, learningRate: adaroundLr,
        gridSearch: adaroundGrid == .gram ? .gram : .weights,
        progress: { step in
          var stderr = StandardError()
          guard !quiet, step.iteration == 0 || step.iteration % every == 0 else { return }
          if step.iteration == 0 {
            print("qconvert: block \(step.block + 1)/\(step.blocks) adaround", to: &stderr)
          } else {
            print(
              "qconvert: block \(step.block + 1)/\(step.blocks) step \(step.iteration)/\(step.iterations) error \(step.reconstruction)",
              to: &stderr)
          }
        },
        report: { block in
          var stderr = StandardError()
          guard !quiet else { return }
          print(
            "qconvert: block \(block.block + 1) output error: nearest \(block.nearestError), adaround \(block.adaRoundError)"
              + (block.keptAdaRound ? "" : " (kept nearest)"),
            to: &stderr)
        })
      return
    }
    guard method == .gptq || method == .clip else { return }
    let sequential: SequentialGPTQ.Method =
      method == .gptq ? .gptq(GPTQ.Options(dampingFraction: gptqDamping, actOrder: actOrder)) : .clip
    var blocks: ProgressReporter? = nil
    try calibration.quantize(
      plan: &plan, method: sequential, packMethod: method == .gptq ? .gptq : .clip, quantizesHead: gptqHead
    ) { step in
      let line = blocks ?? reporter(method == .gptq ? "GPTQ" : "clip search", total: step.blocks, unit: "blocks")
      blocks = line
      line.update(step.block, detail: step.tensor)
    }
    blocks?.finish()
  }
}
