import ArgumentParser
import Foundation
import QCompute
import QFormats
import QToolSupport

extension QConvert {
  /// Whole-model types `--gguf-type` accepts: llama-quantize's names, with its aliases q3_k,
  /// q4_k and q5_k for the _m mixes.
  enum GGUFType: String, ExpressibleByArgument, CaseIterable {
    case q4_0, q4_1, q5_0, q5_1, q8_0
    case q2_k, q3_k_s, q3_k_m, q3_k_l, q4_k_s, q4_k_m, q5_k_s, q5_k_m, q6_k, iq4_nl
    case q3_k, q4_k, q5_k

    var mix: GGUFMix {
      switch self {
      case .q4_0: .q4_0
      case .q4_1: .q4_1
      case .q5_0: .q5_0
      case .q5_1: .q5_1
      case .q8_0: .q8_0
      case .q2_k: .q2_k
      case .q3_k_s: .q3_k_s
      case .q3_k_m, .q3_k: .q3_k_m
      case .q3_k_l: .q3_k_l
      case .q4_k_s: .q4_k_s
      case .q4_k_m, .q4_k: .q4_k_m
      case .q5_k_s: .q5_k_s
      case .q5_k_m, .q5_k: .q5_k_m
      case .q6_k: .q6_k
      case .iq4_nl: .iq4_nl
      }
    }
  }

  /// The layout `--layout` names, as the plug-in that says what it can hold.
  var outputLayout: any OutputLayout.Type {
    switch layout {
    case .native: QPackLayout.self
    case .mlx: MLXLayout.self
    case .gguf: GGUFLayout.self
    }
  }

  /// The options as one request, for the layout to honour or refuse.
  func request(rules: [ConvertRule]) -> ConvertRequest {
    var request = ConvertRequest()
    request.method = method.rawValue
    request.bits = bitsOption
    request.groupSize = groupSizeOption
    request.rules = rules
    request.compress = compress == .zstd
    request.maxShardBytes = maxShardSize
    request.dryRun = dryRun
    if let calib { request.calibrationOptions.append("--calib \(calib)") }
    if sensitivity { request.calibrationOptions.append("--sensitivity") }
    if let targetBpw { request.calibrationOptions.append("--target-bpw \(targetBpw)") }
    if let ggufTypeOption { request.ggufOptions.append("--gguf-type \(ggufTypeOption.rawValue)") }
    if ggufPure { request.ggufOptions.append("--gguf-pure") }
    if let imatrix { request.ggufOptions.append("--imatrix \(imatrix)") }
    return request
  }

  /// With '--method gptq', GPTQ's codes on the layout's stored grids (`grids` names them), decided
  /// on the calibration text before the writer streams; otherwise none.
  func gptqCodes(
    checkpoint: Checkpoint, grids: () throws -> [String: SequentialGPTQ.StoredGridMaker]
  ) throws -> [String: StoredCodes] {
    guard method == .gptq, let calib else { return [:] }
    let planned = try grids()
    let calibration = try openCalibration(calib, checkpoint: checkpoint, for: "calibrating")
    var blocks: ProgressReporter? = nil
    defer { blocks?.finish() }
    return try calibration.decide(
      onto: planned, actOrder: actOrder, quantizesHead: gptqHead, regridsGroups: gptqRegroup, damping: gptqDamping
    ) { step in
      let line = blocks ?? reporter("GPTQ", total: step.blocks, unit: "blocks")
      blocks = line
      line.update(step.block, detail: step.tensor)
    }
  }

  /// How the MLX export rounds what no calibrated method decided: the method itself, and for
  /// GPTQ, which reaches the decoder linears only, the clip search on MLX's grid (data-free and
  /// no group worse than plain rounding) for the rest: the tied embedding and output head
  /// above all, whose rounding costs the most at 3 bits.
  var mlxMethod: MLXExport.Method {
    MLXExport.Method(rawValue: method.rawValue) ?? (method == .gptq ? .clip : .rtn)
  }

  /// Without GPTQ, the importance matrix `--calib` measures: the full-precision model's mean
  /// squared input of each decoder linear, as `llama-imatrix` records it.
  func measuredImportance(_ checkpoint: Checkpoint) throws -> GGUFImportance? {
    guard method != .gptq, let calib else { return nil }
    let calibration = try openCalibration(calib, checkpoint: checkpoint, for: "measuring importance")
    let line = reporter("importance matrix", total: calibration.windows.count, unit: "windows")
    defer { line.finish() }
    return try calibration.importanceMatrix(file: calib) { done, _ in line.update(done) }
  }

  /// Writes the input in a runtime's own layout instead of a qpack; `outputLayout` has already
  /// refused what the layout cannot hold.
  func exportLayout(checkpoint: Checkpoint, source: any TensorSource, rules: [ConvertRule]) throws {
    var stderr = StandardError()
    let progress: (ExportProgress) -> Void = { step in
      if !quiet { print("[\(step.index + 1)/\(step.count)] \(step.tensor)", to: &stderr) }
    }
    switch layout {
    case .native:
      return
    case .mlx:
      // Which tensors stay unquantized decides the plan, so MLX looks before it writes.
      let nonFinite = try NonFiniteElement.all(in: source)
      if let first = nonFinite.first, !allowNonfinite { throw ConvertError.nonFinite(first) }
      for element in nonFinite {
        print("qconvert: warning: \(element); kept unquantized", to: &stderr)
      }
      let overrides: [String: MLXExport.Settings?] = Dictionary(
        nonFinite.map { ($0.tensor, nil) }, uniquingKeysWith: { first, _ in first })
      let decided = try gptqCodes(checkpoint: checkpoint) {
        try MLXExport.gptqGrids(
          source: source, configData: checkpoint.configData, bits: bits, groupSize: groupSize, rules: rules,
          overrides: overrides, search: .weightedClip)
      }
      let stage = try StagedFolder(destination: output, force: force, inputs: inputPaths(checkpoint))
      do {
        try MLXExport.exportMLX(
          source: source, configData: checkpoint.configData, sideFilesFrom: checkpoint.folder,
          to: stage.temporary, bits: bits, groupSize: groupSize,
          method: mlxMethod, rules: rules,
          overrides: overrides, decided: decided, maxShardBytes: maxShardSize, progress: progress)
        try stage.commit()
      } catch {
        stage.abandon()
        throw error
      }
    case .gguf:
      let destination = try checkedOutput(checkpoint)
      guard let configData = checkpoint.configData else {
        // The weights' own defects come first, as when every layout scanned before writing.
        if !allowNonfinite, let first = try NonFiniteElement.all(in: source).first { throw ConvertError.nonFinite(first) }
        throw ConvertError.invalidOption(
          option: input, reason: "has no config.json beside it, which GGUF's hyper-parameters come from")
      }
      let tokenizer = checkpoint.folder.flatMap {
        FileManager.default.contents(atPath: ($0 as NSString).appendingPathComponent("tokenizer.json"))
      }
      let selection: GGUFTypeSelection = ggufPure ? .pure(ggufType.mix) : .mix(ggufType.mix)
      let importance = try imatrix.map { GGUFImportance(try ImportanceMatrix(path: $0)) } ?? measuredImportance(checkpoint)
      // GPTQ runs the model before the writer streams: a NaN or infinity is refused first, as
      // the writer would, not met as a singular Hessian further down.
      if method == .gptq, !allowNonfinite, let first = try NonFiniteElement.all(in: source).first {
        throw ConvertError.nonFinite(first)
      }
      // GPTQ's block grids are weighted as llama-quantize weights by an importance matrix: by
      // the one given, or else by the input energies its own calibration measures.
      let weighting: GGUFExport.GridWeighting = importance.map { .matrix($0.weights) } ?? .calibration
      let decided = try gptqCodes(checkpoint: checkpoint) {
        try GGUFExport.gptqGrids(
          source: source, configData: configData, configPath: checkpoint.configPath, selection: selection,
          rules: rules, weighting: weighting)
      }
      try GGUFExport.exportGGUF(
        source: source, configData: configData, configPath: checkpoint.configPath, tokenizerJSON: tokenizer,
        to: destination, selection: selection, rules: rules, decided: decided, importance: importance,
        weightedMix: importance != nil || method == .gptq,
        nonFinite: { element in
          // The file is renamed into place only when complete, so refusing here leaves nothing.
          if !allowNonfinite { throw ConvertError.nonFinite(element) }
          print("qconvert: warning: \(element); written as it is", to: &stderr)
        },
        progress: progress)
    }
  }
}
