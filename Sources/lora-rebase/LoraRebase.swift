import ArgumentParser
import Foundation
import QFormats
import QToolSupport

@main
struct LoraRebaseCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "lora-rebase",
    abstract: "Move a LoRA adapter trained on one base model onto a new base model.",
    discussion: """
      Follows LoRASuite: a hidden transfer matrix fitted on the input embeddings of the tokens \
      both vocabularies share (the identity when vocabulary and hidden size agree), an \
      order-preserving layer map from the weight CKA of the two models and Hungarian head \
      matching per mapped layer pair (computed as 'qdiff --layer-similarity' does, or read \
      from a 'qdiff --save-mapping' file with --mapping, or from the activation CKA of both \
      bases run on the same text with --data, as 'qdiff --data' does), per-head q/k/v/o and MLP \
      transforms, and a refactoring to the old rank. --finetune then trains the moved A and B on \
      the new base. --fresh skips the move: it writes a fresh adapter of the same rank, alpha and \
      modules on every new layer (A random, B zero), the baseline to train with the same \
      --finetune settings. The report is described in Formats/lora-rebase-report.md.
      """,
    version: "0.1.0")

  /// Runs with stdout checked and errors named after the tool (`mainCheckingOutput`).
  static func main() {
    mainCheckingOutput()
  }

  @Argument(help: "The base model the adapter was trained on (a model folder).")
  var oldBase: String

  @Argument(help: "The new base model (a model folder).")
  var newBase: String

  @Argument(help: "The PEFT adapter folder (adapter_config.json, adapter_model.safetensors).")
  var adapter: String

  @Option(name: .shortAndLong, help: "Where to write the moved adapter folder.")
  var output: String

  @Flag(help: "Replace an existing output folder (never one of the inputs).")
  var force = false

  @Flag(help: "Use the least-squares head and neuron maps, exact when both bases are the same.")
  var normalize = false

  @Option(help: "A layer and head mapping file written by 'qdiff --save-mapping', used instead of the weight CKA.")
  var mapping: String?

  @Option(help: ArgumentHelp(
    "Map layers by the activation CKA of both bases run on this text or JSONL file.", valueName: "text"))
  var data: String?

  @Option(help: "At most this many ids per --data window on either side.")
  var dataContext: Int = 512

  @Option(help: "Windows of the --data text to run.")
  var dataWindows: Int = 8

  @Flag(help: "Move nothing: write a fresh adapter of the same rank, alpha and modules on every new layer (A random, B zero), to train with --finetune as a baseline.")
  var fresh = false

  @Flag(help: "Leave out modules that cannot be moved instead of stopping.")
  var skipUnsupported = false

  @Option(help: "Report format: table or json.")
  var format: ReportFormat = .table

  @Option(help: "Write the CKA heatmap with the layer map to this SVG file.")
  var plot: String?

  enum ReportFormat: String, ExpressibleByArgument, CaseIterable {
    case table, json
  }

  @OptionGroup(title: "Fine-tuning")
  var finetune: LoRAFinetuneArguments

  func validate() throws {
    guard dataContext >= 2 else { throw ValidationError("--data-context must be at least 2, not \(dataContext)") }
    guard dataWindows > 0 else { throw ValidationError("--data-windows must be positive, not \(dataWindows)") }
    if mapping != nil, data != nil {
      throw ValidationError("--mapping and --data both choose the layer map; pass one")
    }
    if fresh {
      let moveOnly = [
        ("--normalize", normalize), ("--mapping", mapping != nil), ("--data", data != nil), ("--plot", plot != nil),
      ]
      if let (flag, _) = moveOnly.first(where: \.1) {
        throw ValidationError("\(flag) shapes the move, and --fresh moves nothing")
      }
    }
  }

  /// Every path this run reads: the output may not be any of them, hold one or lie inside one.
  var inputPaths: [String] {
    [oldBase, newBase, adapter, mapping, data, finetune.data, finetune.eval].compactMap { $0 }
  }

  /// The output folder, checked before any work starts.
  func checkedOutput() throws -> OutputDestination {
    do {
      return try OutputDestination(path: output, kind: .folder, replace: force, inputs: inputPaths)
    } catch {
      throw LoraRebaseError.outputRefused(error)
    }
  }

  func run() throws {
    if let plot { _ = try OutputDestination(path: plot, kind: .file, replace: true, inputs: inputPaths + [output]) }
    if fresh {
      try runFresh()
      return
    }
    let destination = try checkedOutput()
    let mappingFile = try mapping.map { try LayerMappingFile.read(from: $0) }
    let activations = data.map {
      LoraRebaseActivations(text: $0, field: finetune.field, context: dataContext, windows: dataWindows)
    }
    let result = try LoraRebase.run(
      oldBase: oldBase, newBase: newBase, adapter: adapter,
      options: LoraRebaseOptions(
        normalize: normalize, skipUnsupported: skipUnsupported, mapping: mappingFile, activations: activations))
    var moved = result.adapter
    if let options = finetune.options() {
      var err = StandardError()
      let tuned = try LoRAFinetune.run(adapter: moved, newBase: newBase, options: options) {
        print($0, to: &err)
      }
      moved = tuned.adapter
      let peak = LoRAFinetune.peakResidentBytes().map { " peak RSS \($0 / 1_048_576) MiB," } ?? ""
      print("fine-tuning: \(options.steps) steps in \(Int(tuned.seconds.rounded()))s,\(peak) \(tuned.trainingWindows) windows", to: &err)
    }
    try moved.write(to: destination)
    var report = result.report
    report.output = output
    if let plot {
      try AtomicText.write(Data(report.plot(similarity: result.similarity).utf8), to: plot, inputs: inputPaths + [output])
    }
    print(format == .json ? try report.json() : report.table(), terminator: "")
  }

  /// `--fresh`: the baseline adapter, trained when `--finetune` is given.
  func runFresh() throws {
    let destination = try checkedOutput()
    var adapter = try LoraRebase.freshAdapter(like: self.adapter, newBase: newBase, seed: finetune.seed)
    let report = LoraFreshReport(
      newBase: newBase, adapterPath: self.adapter, output: output, fresh: adapter, seed: finetune.seed)
    if let options = finetune.options() {
      var err = StandardError()
      let tuned = try LoRAFinetune.run(adapter: adapter, newBase: newBase, options: options) {
        print($0, to: &err)
      }
      adapter = tuned.adapter
      let peak = LoRAFinetune.peakResidentBytes().map { " peak RSS \($0 / 1_048_576) MiB," } ?? ""
      print("fine-tuning: \(options.steps) steps in \(Int(tuned.seconds.rounded()))s,\(peak) \(tuned.trainingWindows) windows", to: &err)
    }
    try adapter.write(to: destination)
    print(format == .json ? try report.json() : report.table(), terminator: "")
  }
}
