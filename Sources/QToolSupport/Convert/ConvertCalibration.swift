import Foundation
import QCompute
import QEngine
import QFormats

/// The calibrated side of `qconvert`: runs the full-precision model on calibration text and
/// turns what it sees into a sensitivity report, a per-tensor bit allocation, or GPTQ and
/// Gram-clip codes that the pack writer stores as they are.
public struct ConvertCalibration {
  /// What to calibrate with.
  public struct Settings: Sendable {
    public var textFile: String
    public var field: String
    public var context: Int
    public var windows: Int
    public var actOrder: Bool

    public init(textFile: String, field: String = "text", context: Int = 512, windows: Int = 32, actOrder: Bool = false) {
      self.textFile = textFile
      self.field = field
      self.context = context
      self.windows = windows
      self.actOrder = actOrder
    }
  }

  public let model: DecoderModel
  public let windows: [[Int]]
  public let prefix: String
  let location: String
  /// Input Gram matrices of the decoder linears (prefixed names) that one step collected for the
  /// next: shared by every copy, so that dropping them before training frees them.
  private let gramCache = GramCache()

  private final class GramCache {
    var grams: [String: Matrix<Double>]?
  }

  /// Loads the checkpoint's decoder and tokenizer and cuts the calibration text into windows.
  public init(checkpoint: Checkpoint, settings: Settings) throws {
    let loaded = try ModelEvaluation.load(checkpoint)
    try PositionLimit.check(
      option: "--calib-context", value: settings.context, model: loaded.model.configuration,
      location: loaded.model.location, use: .inference)
    model = loaded.model
    prefix = ModelEvaluation.languageModelPrefix(of: checkpoint.source)
    let dataset = try TextDataset(contentsOf: URL(fileURLWithPath: settings.textFile), field: settings.field)
    let collector = CalibrationCollector(model: model, tokenizer: loaded.tokenizer, prefix: prefix)
    windows = try collector.windows(of: dataset, context: settings.context, count: settings.windows)
    location = checkpoint.location
  }

  /// The relative output error of quantizing each linear layer alone at each candidate grid,
  /// from Gram matrices over every window (kept for the steps after it).
  public func sensitivity(candidates: [CalibratedGrid], progress: ((Int, Int) -> Void)? = nil) throws
    -> SensitivityReport
  {
    let grams = try collectGrams(windows: windows.count, progress: progress)
    return try SensitivityReport.compute(model: model, grams: grams, candidates: candidates, prefix: prefix)
  }

  /// The Gram matrices collected so far, or those of the first `count` windows.
  func collectGrams(windows count: Int, progress: ((Int, Int) -> Void)? = nil) throws
    -> [String: Matrix<Double>]
  {
    if let grams = gramCache.grams { return grams }
    let collector = CalibrationCollector(model: model, prefix: prefix)
    let collected = try collector.collectGrams(windows: Array(windows.prefix(count)), progress: progress)
    gramCache.grams = collected
    return collected
  }

  /// Replaces the plan's spec of every tensor in `grids` (a bit allocation) by that grid.
  public static func apply(
    allocation grids: [String: CalibratedGrid], to plan: inout ConvertPlan, method: PackMethod,
    scaleDType: DType
  ) throws {
    for index in plan.entries.indices {
      let entry = plan.entries[index]
      guard let grid = grids[entry.info.name] else { continue }
      try plan.entries[index].respec(
        packSpec(for: grid, method: method, scaleDType: scaleDType), reason: "allocated \(grid)",
        location: plan.location)
    }
  }

  /// Quantizes the plan's decoder linears with GPTQ (or the Gram clip search) layer by layer,
  /// feeding each block's quantized outputs forward, and stores the codes in the plan.
  ///
  /// With `quantizesHead`, the output head (the embedding, when tied) comes last, when the plan
  /// gives it a grid.
  public func quantize(
    plan: inout ConvertPlan, method: SequentialGPTQ.Method, packMethod: PackMethod, quantizesHead: Bool = false,
    progress: ((SequentialGPTQ.Progress) -> Void)? = nil
  ) throws {
    var grids: [String: CalibratedGrid] = [:]
    for entry in plan.entries {
      guard let spec = entry.spec, let grid = Self.calibratedGrid(for: spec) else { continue }
      grids[entry.info.name] = grid
    }
    let results = try SequentialGPTQ.run(
      model: model, windows: windows, plan: { grids[$0] }, method: method,
      options: SequentialGPTQ.Options(prefix: prefix, quantizesHead: quantizesHead), progress: progress)
    for index in plan.entries.indices {
      let entry = plan.entries[index]
      guard let quantized = results[entry.info.name], var spec = entry.spec else { continue }
      spec.method = packMethod
      try plan.entries[index].respec(spec, reason: entry.reason + ", \(packMethod.rawValue)", location: plan.location)
      plan.entries[index].precomputed = quantized
    }
  }

  /// GPTQ onto a layout's stored grids (`grids`, by tensor name, from the layout's exporter),
  /// layer by layer with each block's quantized outputs fed forward: the codes the layout's
  /// writer then stores as they are.
  public func decide(
    onto grids: [String: SequentialGPTQ.StoredGridMaker], actOrder: Bool, quantizesHead: Bool = false,
    regridsGroups: Bool = false, damping: Double = GPTQ.Options().dampingFraction,
    progress: ((SequentialGPTQ.Progress) -> Void)? = nil
  ) throws -> [String: StoredCodes] {
    try SequentialGPTQ.run(
      model: model, windows: windows, storedGrids: { grids[$0] },
      gptq: GPTQ.Options(dampingFraction: damping, actOrder: actOrder),
      options: SequentialGPTQ.Options(prefix: prefix, quantizesHead: quantizesHead, regridsGroups: regridsGroups),
      progress: progress)
  }

  /// Quantizes the plan's decoder linears with block-wise AdaRound on the Gram clip search's
  /// grids, block by block on the quantized model's activations, and stores the codes in the plan.
  public func adaRound(
    plan: inout ConvertPlan, iterations: Int, learningRate: Double,
    gridSearch: SequentialAdaRound.GridSearch = .gram, progress: ((SequentialAdaRound.Progress) -> Void)? = nil,
    report: ((SequentialAdaRound.BlockReport) -> Void)? = nil
  ) throws {
    var grids: [String: CalibratedGrid] = [:]
    for entry in plan.entries {
      guard let spec = entry.spec, spec.grid == .affine, let grid = Self.calibratedGrid(for: spec) else { continue }
      grids[entry.info.name] = grid
    }
    let options = AdaRound.Options(iterations: iterations, learningRate: learningRate)
    let results = try SequentialAdaRound.run(
      model: model, windows: windows, plan: { grids[$0] }, options: options, gridSearch: gridSearch,
      prefix: prefix, progress: progress,
      report: report)
    for index in plan.entries.indices {
      let entry = plan.entries[index]
      guard let quantized = results[entry.info.name], var spec = entry.spec else { continue }
      spec.method = .adaround
      try plan.entries[index].respec(spec, reason: entry.reason + ", adaround", location: plan.location)
      plan.entries[index].precomputed = quantized
    }
  }

  /// The calibrated grid of a pack spec, or `nil` for the embedding policy (kept round-to-nearest).
  static func calibratedGrid(for spec: PackSpec) -> CalibratedGrid? {
    switch spec.grid {
    case .affine: .affine(bits: spec.bits, groupSize: spec.groupSize)
    case .symmetric:
      spec.embeddingPolicy ? nil : .symmetric(bits: spec.bits, groupSize: spec.groupSize)
    case .bilevel:
      .bilevel(
        BilevelQuantizer.Configuration(
          bits: spec.bits, groupSize: spec.groupSize.length(columns: Int.max),
          scaleGroupSize: spec.scaleGroupSize))
    }
  }

  static func packSpec(for grid: CalibratedGrid, method: PackMethod, scaleDType: DType) -> PackSpec {
    switch grid {
    case .affine(let bits, let group):
      PackSpec(bits: bits, groupSize: group, grid: .affine, method: method, scaleDType: scaleDType)
    case .symmetric(let bits, let group):
      PackSpec(bits: bits, groupSize: group, grid: .symmetric, method: method, scaleDType: scaleDType)
    case .bilevel(let configuration):
      PackSpec(
        bits: configuration.bits, groupSize: .elements(configuration.groupSize), grid: .bilevel,
        method: method, scaleDType: scaleDType, scaleGroupSize: configuration.scaleGroupSize)
    }
  }
}

extension PlanEntry {
  /// Switches the entry to another spec, recomputing what it writes.
  mutating func respec(_ spec: PackSpec, reason: String, location: String) throws {
    let (description, outputs) = try PackEncoder.companions(of: info, spec: spec, location: location)
    self.spec = spec
    self.description = description
    self.outputs = outputs
    self.reason = reason
  }
}

extension ConvertCalibration {
  /// The grid the plan gives the token embedding (and an untied lm_head, which must share it),
  /// so that the student trains against the values the pack will hold.
  func embeddingGrid(in plan: ConvertPlan) throws -> SpeedQConfiguration.EmbeddingGrid {
    // A wrapper's head may sit at the top level, outside its language model (Idefics3, SmolVLM).
    let names = ["model.embed_tokens.weight", "lm_head.weight"].map { prefix + $0 } + ["lm_head.weight"]
    let entries = plan.entries.filter { names.contains($0.info.name) }
    guard let first = entries.first else { return .speedQ }
    for entry in entries.dropFirst() where entry.spec != first.spec {
      throw ConvertError.invalidOption(
        option: "--rule",
        reason: "SPEED-Q training holds \(first.info.name) and \(entry.info.name) on one grid; "
          + "the plan gives them '\(first.spec.map { "\($0)" } ?? "keep")' and '\(entry.spec.map { "\($0)" } ?? "keep")'")
    }
    guard let spec = first.spec else { return .kept }
    if spec.grid == .bilevel, case .elements(let group) = spec.groupSize {
      return .trained(BilevelQuantizer.Configuration(bits: spec.bits, groupSize: group, scaleGroupSize: spec.scaleGroupSize))
    }
    return spec.embeddingPolicy && spec.bits == 4 && spec.groupSize == .elements(32) ? .speedQ : .packed(spec)
  }

  /// The bilevel grid the plan gives each decoder linear where it is not `default` (after
  /// `--rule` or `--target-bpw`), and the linears it keeps in full precision.
  /// - Throws: `ConvertError.invalidOption` for a linear the plan puts on a grid other than
  ///   bilevel, which the training cannot reproduce.
  func linearGrids(in plan: ConvertPlan, layers: Int, default grid: BilevelQuantizer.Configuration) throws
    -> (grids: [String: BilevelQuantizer.Configuration], kept: Set<String>)
  {
    var names: Set<String> = []
    for layer in 0..<layers {
      for module in TrainableDecoder.linearModules(layer: layer, architecture: model.configuration.architecture) { names.insert(module + ".weight") }
    }
    var grids: [String: BilevelQuantizer.Configuration] = [:]
    var kept: Set<String> = []
    for entry in plan.entries where entry.info.name.hasPrefix(prefix) {
      let name = String(entry.info.name.dropFirst(prefix.count))
      guard names.contains(name) else { continue }
      guard let spec = entry.spec else {
        kept.insert(name)
        continue
      }
      guard spec.grid == .bilevel, case .elements(let group) = spec.groupSize else {
        throw ConvertError.invalidOption(
          option: "--rule",
          reason: "SPEED-Q trains \(entry.info.name) on a bilevel grid (bilevel2, bilevel4) or keeps it; "
            + "the plan gives it '\(spec)'")
      }
      let own = BilevelQuantizer.Configuration(bits: spec.bits, groupSize: group, scaleGroupSize: spec.scaleGroupSize)
      if own != grid { grids[name] = own }
    }
    return (grids, kept)
  }

  /// SPEED-Q's stage 3 on the language model: quantization-aware training of the decoder linears
  /// on the plan's bilevel grid, distilled from the full-precision model on the calibration
  /// windows; the trained codes (and the frozen embedding, on the grid the plan gives it) replace the plan's.
  ///
  /// The clip search that initialises the linears weighs each group's error by the calibration
  /// Gram matrices: those of `--target-bpw` when it ran, else of the first windows γ is taken
  /// from. A run resuming from a checkpoint skips them, as its latent weights are in the file.
  ///
  /// With GPTQ initialisation, GPTQ runs on each linear's grid over the first
  /// `configuration.confidenceWindows` windows and training starts from its dequantized codes.
  public func speedQ(
    plan: inout ConvertPlan, source: any TensorSource, config: ModelConfig,
    configuration: SpeedQConfiguration, gramProgress: ((Int, Int) -> Void)? = nil,
    gptqProgress: ((SequentialGPTQ.Progress) -> Void)? = nil,
    progress: @escaping (SpeedQProgress) -> Void
  ) throws {
    var configuration = configuration
    configuration.embedding = try embeddingGrid(in: plan)
    (configuration.linearGrids, configuration.keptLinears) = try linearGrids(
      in: plan, layers: model.configuration.layerCount, default: configuration.grid)
    var hessians: [String: Matrix<Double>] = [:]
    var initialWeights: [String: [Float]] = [:]
    let resuming = configuration.checkpointPath.map { FileManager.default.fileExists(atPath: $0) } ?? false
    if !resuming && configuration.initialisation == .gptq {
      initialWeights = try gptqInitialisation(
        plan: plan, windowCount: configuration.confidenceWindows, progress: gptqProgress)
    } else if !resuming {
      for (name, gram) in try collectGrams(windows: configuration.confidenceWindows, progress: gramProgress)
      where name.hasPrefix(prefix) {
        hessians[String(name.dropFirst(prefix.count))] = gram
      }
    }
    let stage = try SpeedQStage3(
      teacher: model, source: source, config: config, prefix: prefix, configuration: configuration,
      windows: windows, hessians: hessians, initialWeights: initialWeights)
    gramCache.grams = nil  // only the initialisation needed them; training runs for long
    let results = try stage.run(progress: progress)
    for index in plan.entries.indices {
      let entry = plan.entries[index]
      guard let quantized = results[entry.info.name], let spec = entry.spec else { continue }
      guard spec.bits == quantized.bits, spec.groupSize.length(columns: quantized.columns) == quantized.groupLength
      else { continue }
      try plan.entries[index].respec(spec, reason: entry.reason + ", qat", location: plan.location)
      plan.entries[index].precomputed = quantized
    }
    for (name, values) in stage.fullPrecisionWeights() {
      try plan.replace(name, with: values, reason: "qat")
    }
  }

  /// GPTQ's codes for every planned bilevel linear, dequantized, by unprefixed name: the latent
  /// weights SPEED-Q starts from when asked to. GPTQ sees the first `windowCount` windows, as
  /// its Hessians need thousands of tokens, not the whole training set.
  func gptqInitialisation(
    plan: ConvertPlan, windowCount: Int, progress: ((SequentialGPTQ.Progress) -> Void)?
  ) throws -> [String: [Float]] {
    var grids: [String: CalibratedGrid] = [:]
    for entry in plan.entries where entry.spec?.grid == .bilevel && entry.info.name.hasPrefix(prefix) {
      guard let spec = entry.spec, let grid = Self.calibratedGrid(for: spec) else { continue }
      grids[entry.info.name] = grid
    }
    let results = try SequentialGPTQ.run(
      model: model, windows: Array(windows.prefix(max(1, windowCount))), plan: { grids[$0] },
      method: .gptq(GPTQ.Options()), options: SequentialGPTQ.Options(prefix: prefix), progress: progress)
    var initial: [String: [Float]] = [:]
    for (name, quantized) in results { initial[String(name.dropFirst(prefix.count))] = quantized.dequantize() }
    return initial
  }
}
