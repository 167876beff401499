import ArgumentParser
import Foundation
import QCompute
import QFormats
import QToolSupport

@main
struct QConvert: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "qconvert",
    abstract: "Convert FP16/BF16/FP32 checkpoints to packed low-bit checkpoints, and back.",
    discussion: """
      Writes a model folder: model.safetensors (a qpack, see Formats/qpack.md), config.json with a
      'quantization' block, and the input's side files. With '--layout mlx' the folder is what \
      mlx_lm loads (uint32 codes, scales and biases); with '--layout gguf' OUTPUT is one GGUF file. Rules REGEX=SPEC pick a spec per tensor,
      first match wins; SPEC is keep, bilevel2, bilevel4 or BITS[gGROUP][:sym|:affine][:rtn|:clip|:hqq], \
      or for GGUF a type name (q4_0, q6_k, q8_0, f16, ...). An option or rule the layout cannot \
      store is refused, never ignored.
      """,
    version: "0.1.0")

  /// Runs with stdout checked and errors named after the tool (`mainCheckingOutput`).
  static func main() {
    mainCheckingOutput()
  }

  enum Method: String, ExpressibleByArgument, CaseIterable { case rtn, clip, hqq, bilevel, gptq, adaround, speedq }
  enum AdaRoundGrid: String, ExpressibleByArgument, CaseIterable { case gram, weights }
  enum Layout: String, ExpressibleByArgument, CaseIterable { case native, mlx, gguf }
  enum PlainDType: String, ExpressibleByArgument, CaseIterable { case f16, bf16, f32 }
  enum Compression: String, ExpressibleByArgument, CaseIterable { case none, zstd }

  @Argument(help: "The checkpoint to convert: a model folder, safetensors file, shard index, HDF5 or GGUF file; GGUF blocks and MLX-quantized linears are dequantized first.")
  var input: String

  @Option(name: .shortAndLong, help: "The model folder to write.")
  var output: String

  @Option(name: .customLong("bits"), help: "Bits per weight code: 2, 3, 4 or 8 (default 4); with '--layout mlx' also 5 or 6.")
  var bitsOption: Int?

  @Option(name: .customLong("group-size"), help: "Elements sharing a scale: 16, 32, 64, 128, or 0 for per channel (default 64).")
  var groupSizeOption: Int?

  /// `--bits`, or its default.
  var bits: Int { bitsOption ?? 4 }
  /// `--group-size`, or its default.
  var groupSize: Int { groupSizeOption ?? 64 }

  @Option(help: "How codes are found: rtn, clip, hqq, bilevel (SPEED-Q w2g16g16 / w4g32g128), gptq (needs --calib; with '--layout mlx' on MLX's grid as a clip search weighted by the calibration chooses it, the embedding by the clip search, with '--layout gguf' on q4_0, q4_1, q5_0, q5_1 and q8_0 blocks, other GGUF tensor types keeping llama.cpp's rounding), adaround (block-wise adaptive rounding on the Gram clip grid; needs --calib), or speedq (SPEED-Q's bilevel grid with distillation-based training; needs --calib; an embedding ruled onto a bilevel grid, e.g. --rule 'embed_tokens=bilevel4', trains on it too, else it is rounded once and frozen).")
  var method: Method = .rtn

  @Option(name: .customLong("rule"), help: "A per-tensor rule REGEX=SPEC; may repeat, first match wins.")
  var rules: [String] = []

  @Option(help: "A recipe file with more rules: JSON {\"rules\": [\"REGEX=SPEC\", ...]} or the same list in YAML (.yaml, .yml).")
  var recipe: String?

  @Option(help: "Output layout: native, mlx or gguf.")
  var layout: Layout = .native

  @Option(name: .customLong("gguf-type"), help: ArgumentHelp(
    "GGUF type for '--layout gguf', named as llama-quantize names them (default q8_0).",
    discussion: "q4_0, q4_1, q5_0, q5_1, q8_0, q2_k, q3_k_s, q3_k_m, q3_k_l, q4_k_s, q4_k_m, q5_k_s, q5_k_m, q6_k or iq4_nl (q3_k, q4_k and q5_k mean the _m mixes). Each tensor's type follows llama-quantize's choices for the mix (see Formats/gguf-export.md). With '--method gptq' only q4_0, q4_1, q5_0, q5_1 and q8_0 are accepted; GPTQ decides the decoder linears stored in those block types, and tensors of other types (the output head's q6_k, the embedding) keep llama.cpp's rounding; each block's d (and m) is chosen as llama-quantize chooses it with an importance matrix, weighted by --imatrix or else by GPTQ's own calibration (see Formats/layouts.md)."))
  var ggufTypeOption: GGUFType?

  /// `--gguf-type`, or its default.
  var ggufType: GGUFType { ggufTypeOption ?? .q8_0 }

  @Flag(help: "With '--layout gguf', store every matrix in the --gguf-type's base block type, as llama-quantize --pure.")
  var ggufPure = false

  @Option(name: .customLong("imatrix"), help: ArgumentHelp(
    "With '--layout gguf': an importance matrix written by llama-imatrix (GGUF or legacy .dat); q4_0, q4_1, q5_0 and q5_1 blocks are rounded by its weights as llama-quantize --imatrix rounds them, and the q4_0 and q5_0 mixes store the first eighth of the ffn_down tensors as q4_1 and q5_1, as llama-quantize does with a matrix.",
    discussion: "Q8_0 and float tensors ignore it, as in llama-quantize; a tensor the mix stores in another block type is refused, since llama-quantize would weight it and this export does not yet. With '--method gptq' the matrix chooses each block's d (and m) as it does for llama-quantize, and GPTQ then decides the codes on that grid; without one, GPTQ weights the grid by the input energies its own calibration measures.",
    valueName: "file"))
  var imatrix: String?

  @Option(help: "Dequantize a pack into a plain checkpoint of this dtype: f16, bf16 or f32.")
  var to: PlainDType?

  @Option(help: "Compress the packed codes: none or zstd (the saving is reported).")
  var compress: Compression = .none

  @Option(help: "Split the pack into shards of at most this many bytes (default: like a sharded input).")
  var maxShardSize: Int?

  @Option(help: ArgumentHelp(
    "Calibration text (plain text or JSONL) the full-precision model runs on: enables gptq, a Gram-weighted clip search, --sensitivity and --target-bpw (with '--layout mlx': gptq only; with '--layout gguf': gptq, or else the importance matrix the blocks are rounded by, measured as llama-imatrix would).",
    valueName: "text-file"))
  var calib: String?

  @Option(help: "Calibration windows to use.")
  var calibWindows: Int = 32

  @Option(help: "Tokens per calibration window.")
  var calibContext: Int = 512

  @Option(help: "The text field of a JSONL calibration file.")
  var calibField: String = "text"

  @Option(help: "SPEED-Q: optimizer steps of quantization-aware training.")
  var qatSteps: Int = 100

  @Option(help: "SPEED-Q: peak learning rate (AdamW, cosine schedule).")
  var qatLr: Double = 5e-5

  @Option(help: "SPEED-Q: a file to save training state in and resume from.")
  var qatCheckpoint: String?

  @Option(help: "SPEED-Q: stop training after this global step and write the pack from the weights so far; a later run with the same --qat-checkpoint resumes on the same schedule.")
  var qatStopAfter: Int?

  @Flag(help: "SPEED-Q: keep the norm weights and biases as stored instead of training them in full precision beside the linears.")
  var qatFreezeNorms = false

  @Option(help: "SPEED-Q: where the latent linears start: clip (the clip search's clamped weights) or gptq (GPTQ's codes on the same grid, from the first 100 calibration windows).")
  var qatInit: SpeedQConfiguration.Initialisation = .clip

  @Option(help: ArgumentHelp(
    "SPEED-Q stage 1: a folder of PNG or JPEG images on which a vision-language model's vision tower is quantized block by block before the language model is trained.",
    valueName: "folder"))
  var calibImages: String?

  @Option(help: "SPEED-Q stage 1: calibration images to use at most (in name order).")
  var calibImageCount: Int = 32

  @Flag(help: "SPEED-Q stage 2: keep the FP projector instead of refitting its last linear (LLaVA's and InternVL's linear_2, Idefics3's connector) to the quantized vision tower on the calibration images.")
  var noProjectorRefit = false

  @Option(help: "SPEED-Q stage 1: AdaRound iterations per vision block (0 keeps the clip-search grids' round-to-nearest codes).")
  var visionIterations: Int = 200

  @Option(help: "AdaRound: optimizer steps per block, each on one calibration window.")
  var adaroundIterations: Int = 200

  @Option(help: "AdaRound: learning rate of Adam on the rounding variables (BRECQ's 1e-3 x 20k steps, scaled to 200).")
  var adaroundLr: Double = 0.1

  @Option(help: "AdaRound: how the fixed grid is found: gram (clip search on the layer's output error) or weights (clip search on the weight error, much faster).")
  var adaroundGrid: AdaRoundGrid = .gram

  @Flag(help: "GPTQ: quantize columns in order of decreasing Hessian diagonal (static groups).")
  var actOrder = false

  @Option(help: "GPTQ: the fraction of the Hessian's mean diagonal added to its diagonal (AutoGPTQ's damp_percent).")
  var gptqDamping: Double = GPTQ.Options().dampingFraction

  @Flag(help: "GPTQ without --act-order into MLX or GGUF: choose each group's grid when GPTQ reaches it, from the weights as updated so far, not all from the original weights.")
  var gptqRegroup = false

  @Flag(help: "GPTQ: also quantize the output head (the embedding, when tied), last, on the final norm's outputs of the quantized blocks.")
  var gptqHead = false

  @Flag(help: "Print each linear layer's output error when quantized alone, at 2, 3, 4 and 8 bits, and exit.")
  var sensitivity = false

  @Option(help: "Choose bits per linear layer (2, 3, 4 or 8) to minimise output error under this budget of bits per weight of the linear layers; under speedq each layer then trains on its own bilevel grid.")
  var targetBpw: Double?

  @Option(help: "Output format of --sensitivity: table or json.")
  var format: OutputFormat = .table

  @Flag(help: "Print the per-tensor plan and totals without converting.")
  var dryRun = false

  @Flag(help: "Replace an existing output: a file with a file, a folder of model files with a folder; never an input, a special file, or a folder holding anything else.")
  var force = false

  @Flag(help: "Keep tensors holding NaN or infinity as stored (with a warning) instead of refusing to write the pack.")
  var allowNonfinite = false

  @Flag(help: "Print no progress.")
  var quiet = false

  @Option(help: ArgumentHelp(
    "Progress of calibration, Gram matrices and training on stderr: auto (one line redrawn on a terminal, else a line per update), lines, json or none.",
    valueName: "style"))
  var progress: ProgressStyle = .auto

  func validate() throws {
    if let maxShardSize, maxShardSize <= 0 {
      throw ValidationError("'--max-shard-size' must be positive, not \(maxShardSize)")
    }
    let needsCalibration = method == .gptq || method == .adaround || method == .speedq
    if calib == nil, needsCalibration || sensitivity || targetBpw != nil {
      let what = needsCalibration ? "'--method \(method.rawValue)'" : sensitivity ? "'--sensitivity'" : "'--target-bpw'"
      throw ValidationError("\(what) needs calibration text: give '--calib TEXT'")
    }
    if calibImages != nil && method != .speedq {
      throw ValidationError("'--calib-images' applies to '--method speedq' only")
    }
    if noProjectorRefit && calibImages == nil {
      throw ValidationError("'--no-projector-refit' applies to '--calib-images' only")
    }
    if calibImageCount < 1 { throw ValidationError("'--calib-image-count' must be at least 1") }
    if visionIterations < 0 { throw ValidationError("'--vision-iterations' must not be negative") }
    if calibWindows < 1 { throw ValidationError("'--calib-windows' must be at least 1") }
    if calibContext < 2 { throw ValidationError("'--calib-context' must be at least 2") }
    if let targetBpw, !(targetBpw > 2 && targetBpw <= 16) {
      throw ValidationError("'--target-bpw' must be above 2 and at most 16, not \(targetBpw)")
    }
    if targetBpw != nil, ![.rtn, .gptq, .speedq].contains(method) {
      throw ValidationError(
        "'--target-bpw' allocates affine grids (or bilevel ones under speedq); use it with '--method rtn', 'gptq' or 'speedq'")
    }
    if let qatStopAfter, qatStopAfter < 0 || method != .speedq {
      throw ValidationError("'--qat-stop-after' takes a step count of at least 0 with '--method speedq', not \(qatStopAfter)")
    }
    if qatInit != .clip && method != .speedq {
      throw ValidationError("'--qat-init' applies to '--method speedq' only")
    }
    if qatFreezeNorms && method != .speedq {
      throw ValidationError("'--qat-freeze-norms' applies to '--method speedq' only")
    }
    if adaroundIterations < 1 { throw ValidationError("'--adaround-iterations' must be at least 1") }
    if !(adaroundLr > 0) { throw ValidationError("'--adaround-lr' must be positive, not \(adaroundLr)") }
    if actOrder && method != .gptq { throw ValidationError("'--act-order' applies to '--method gptq' only") }
    if gptqRegroup && (method != .gptq || actOrder || layout == .native) {
      throw ValidationError("'--gptq-regroup' applies to '--method gptq' into '--layout mlx' or 'gguf', without '--act-order'")
    }
    if gptqDamping != GPTQ.Options().dampingFraction && method != .gptq {
      throw ValidationError("'--gptq-damping' applies to '--method gptq' only")
    }
    if !(gptqDamping >= 0 && gptqDamping.isFinite) {
      throw ValidationError("'--gptq-damping' takes a fraction of at least 0, not \(gptqDamping)")
    }
    if gptqHead && method != .gptq { throw ValidationError("'--gptq-head' applies to '--method gptq' only") }
    if format != .table && format != .json { throw ValidationError("'--format' is table or json") }
    if format != .table && !sensitivity { throw ValidationError("'--format' applies to '--sensitivity' only") }
  }

  func run() throws {
    var stderr = StandardError()
    do {
      try convert()
    } catch let error as ConvertError {
      print("qconvert: \(error)", to: &stderr)
      throw ExitCode(error.isUsageError ? 64 : 1)
    } catch let error as ExitCode {
      throw error
    } catch let error as OptionLimitError {
      print("qconvert: \(error)", to: &stderr)
      throw ExitCode.validationFailure
    } catch {
      print("qconvert: \(error)", to: &stderr)
      throw ExitCode(1)
    }
  }

  /// Every path this run reads: an output may not be any of them, hold one or lie inside one.
  /// A file input's folder is not among them (outputs beside the input are the common case),
  /// but the input and its config.json are.
  func inputPaths(_ checkpoint: Checkpoint) -> [String] {
    [input, checkpoint.configPath, recipe, calib, calibImages, qatCheckpoint, imatrix].compactMap { $0 }
  }

  /// The output path, checked against the inputs; done before any work so that a refused path
  /// costs nothing, and again when the output is put in place.
  func checkedOutput(_ checkpoint: Checkpoint) throws -> OutputDestination {
    let kind: OutputDestination.Kind = layout == .gguf && to == nil ? .file : .folder
    do {
      return try OutputDestination(path: output, kind: kind, replace: force, inputs: inputPaths(checkpoint))
    } catch {
      throw ConvertError.output(error)
    }
  }

  func convert() throws {
    var parsedRules = try rules.map { (text) throws(ConvertError) in try ConvertRule(parsing: text) }
    if let recipe { parsedRules += try ConvertRule.recipe(at: recipe) }
    // The layout refuses what it cannot hold before any option is checked against the pack's grids.
    if to == nil { try outputLayout.check(request(rules: parsedRules)) }
    let settings = try ConvertSettings(
      bits: bits, groupSize: try ConvertRule.groupSize(groupSize, where: "--group-size"),
      method: method == .gptq || method == .adaround ? .rtn : method == .speedq ? .bilevel : ConvertSettings.Method(rawValue: method.rawValue) ?? .rtn)

    let checkpoint = try Checkpoint.open(input).dequantized()
    // An empty pack, plain checkpoint or export is no conversion of anything.
    guard !checkpoint.source.tensors.isEmpty else { throw ConvertError.noTensors(location: checkpoint.source.location) }
    if !dryRun && !sensitivity { _ = try checkedOutput(checkpoint) }
    let source: any TensorSource =
      PackedCheckpoint.isPack(checkpoint.source) ? try PackedCheckpoint(wrapping: checkpoint.source) : checkpoint.source

    if let to {
      let dtype: DType = to == .f16 ? .f16 : to == .bf16 ? .bf16 : .f32
      if dryRun {
        let bytes = source.tensors.reduce(0) { $0 + ($1.dtype.isFloatingPoint ? $1.elementCount * dtype.byteSize : $1.byteCount) }
        print("\(source.tensors.count) tensors -> \(bytes) bytes of \(dtype.rawValue)")
        return
      }
      let stage = try StagedFolder(destination: output, force: force, inputs: inputPaths(checkpoint))
      do {
        try ConvertJob.writePlain(source: source, dtype: dtype, to: stage.path("model.safetensors"), quiet: quiet)
        try ConvertJob.writeSideFiles(checkpoint: checkpoint, into: stage, quantization: nil)
        try stage.commit()
      } catch {
        stage.abandon()
        throw error
      }
      return
    }

    if layout != .native {
      guard !(source is PackedCheckpoint) else {
        throw ConvertError.invalidOption(option: input, reason: "is a qpack; dequantize it with '--to f16' first")
      }
      try exportLayout(checkpoint: checkpoint, source: source, rules: parsedRules)
      return
    }
    guard !(source is PackedCheckpoint) else {
      throw ConvertError.invalidOption(option: input, reason: "is already a qpack; use '--to f16' to dequantize it")
    }
    let config = try checkpoint.configData.map {
      try ModelConfig(data: $0, location: checkpoint.configPath ?? checkpoint.location)
    }
    let architecture = ArchitectureSummary.recognise(config: config, tensors: source.tensors)
    var plan = try ConvertPlan(
      tensors: source.tensors, architecture: architecture, settings: settings, rules: parsedRules,
      location: source.location)
    let calibration = try calibrate(checkpoint: checkpoint, plan: &plan)
    if sensitivity { return }
    // Shards like the input's, unless asked otherwise.
    let inputShardBytes = (source as? ShardedCheckpoint)?.shards.map(\.fileSize).max()
    if dryRun {
      print(try ConvertJob.planTable(plan), terminator: "")
      if compress == .zstd { print("(sizes before zstd compression, which is measured when converting)") }
      if let limit = maxShardSize ?? inputShardBytes {
        print("(output file size as one file; the pack is split into shards of at most \(limit) bytes, each with its own header)")
      }
      return
    }
    try quantizeCalibrated(calibration, plan: &plan, source: source, config: config)
    let options = PackOutputOptions(
      compress: compress == .zstd, maxShardBytes: maxShardSize ?? inputShardBytes, allowNonFinite: allowNonfinite)
    let stage = try StagedFolder(destination: output, force: force, inputs: inputPaths(checkpoint))
    do {
      let summary = try ConvertJob.writePack(
        plan: plan, source: source, into: stage.temporary, options: options, quiet: quiet)
      if options.compress, !quiet {
        var stderr = StandardError()
        let saved = summary.weightBytesBefore - summary.weightBytesAfter
        let percent = summary.weightBytesBefore > 0 ? 100 * Double(saved) / Double(summary.weightBytesBefore) : 0
        let total = plan.bytesAfter
        print(
          "qconvert: zstd: codes \(summary.weightBytesBefore) -> \(summary.weightBytesAfter) bytes "
            + String(format: "(%.1f%% saved); tensors %d -> %d bytes (%.1f%% saved)", percent, total, summary.storedBytes,
              total > 0 ? 100 * Double(total - summary.storedBytes) / Double(total) : 0),
          to: &stderr)
      }
      if !summary.keptNonFinite.isEmpty {
        var stderr = StandardError()
        for element in summary.keptNonFinite {
          print("qconvert: warning: \(element); kept unquantized", to: &stderr)
        }
        plan.keepAsStored(summary.keptNonFinite.map(\.tensor), reason: "holds NaN or infinity")
      }
      try ConvertJob.writeSideFiles(checkpoint: checkpoint, into: stage, quantization: ConvertJob.quantizationBlock(plan: plan))
      try stage.commit()
    } catch {
      stage.abandon()
      throw error
    }
  }
}

extension SpeedQConfiguration.Initialisation: ExpressibleByArgument {}
