import ArgumentParser
import Foundation
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
      from a 'qdiff --save-mapping' file with --mapping), per-head q/k/v/o and MLP transforms, and a refactoring \
      to the old rank. The report is described in Formats/lora-rebase-report.md.
      """,
    version: "0.1.0")

  @Argument(help: "The base model the adapter was trained on (a model folder).")
  var oldBase: String

  @Argument(help: "The new base model (a model folder).")
  var newBase: String

  @Argument(help: "The PEFT adapter folder (adapter_config.json, adapter_model.safetensors).")
  var adapter: String

  @Option(name: .shortAndLong, help: "Where to write the moved adapter folder.")
  var output: String

  @Flag(help: "Use the least-squares head and neuron maps, exact when both bases are the same.")
  var normalize = false

  @Option(help: "A layer and head mapping file written by 'qdiff --save-mapping', used instead of the weight CKA.")
  var mapping: String?

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

  func run() throws {
    let mappingFile = try mapping.map { try LayerMappingFile.read(from: $0) }
    let result = try LoraRebase.run(
      oldBase: oldBase, newBase: newBase, adapter: adapter,
      options: LoraRebaseOptions(
        normalize: normalize, skipUnsupported: skipUnsupported, mapping: mappingFile))
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
    try moved.write(to: output)
    var report = result.report
    report.output = output
    if let plot {
      try Data(report.plot(similarity: result.similarity).utf8).write(to: URL(fileURLWithPath: plot), options: .atomic)
    }
    print(format == .json ? try report.json() : report.table(), terminator: "")
  }
}
