import ArgumentParser
import Foundation
import QFormats
import QToolSupport

#if canImport(Glibc)
  import Glibc
#endif

@main
struct QDiff: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "qdiff",
    abstract: "Compare two checkpoints tensor by tensor, layer by layer and on data.",
    discussion: """
      Lists tensors removed, added and renamed (a prefix change such as 'model.' to \
      'language_model.model.', or layers renumbered, found by content), dtype and shape changes, \
      and for tensors of the same shape the relative L2 error ||a-b||/||a||, cosine, largest \
      absolute difference and SNR in dB, with totals per component and per layer; and the \
      differences of the configs (vocabulary, sizes, heads, rope settings) in plain words. Packs \
      made by qconvert are dequantized on the fly, so a model against its own pack shows the \
      quantization error and bits per weight of every tensor, worst first.

      With --layer-similarity, each decoder layer of the old model is compared with each of the \
      new one by linear CKA on what the layer writes into the residual stream (its o_proj and \
      down_proj weights; no data needed). When the hidden sizes or vocabularies differ, old \
      vectors are first mapped into the new basis by the least-squares fit between the input \
      embeddings of the tokens both tokenizer.json files share. The order-preserving layer \
      mapping follows by dynamic programming, and for each mapped pair the attention heads are \
      matched by the cosine of their QK and VO products (Hungarian algorithm, grouped-query \
      attention from config.json). --plot draws the CKA heatmap with the mapping, the head \
      matrices and, for a pack, the error per layer; --save-mapping writes the mappings for \
      lora-rebase --mapping (Formats/layer-mapping.md).

      With --data TEXT, both language models run on the same text (plain text, or JSONL with \
      --field): the perplexity of each, and when their tokenizers have the same vocabulary, on \
      the same windows of ids: the mean KL(old || new) of the next-token distributions, the \
      top-1 agreement and the cosine of each layer's hidden states. Linear CKA between the \
      layers' hidden states (minibatch, unbiased HSIC) then gives the layer mapping that \
      --plot draws and --save-mapping writes. With different tokenizers each model reads the \
      same pieces of whole words with its own ids; perplexities compare as bits per byte, and \
      CKA compares each piece's mean hidden state. Data make the exit status 1 unless the KL \
      is 0 and the top-1 agreement 1.

      With --images DIR or FILE..., both models' vision towers (a LLaVA, Idefics3 or InternVL model's tower and \
      projector, or a standalone DINOv2, CLIP or SigLIP tower) run on the same PNG and JPEG \
      images, each preprocessed as its model expects: per image the cosine (mean over tokens) \
      and relative L2 of the final features, the cosine of every hidden state of the towers, \
      and for vision-language models of the projector's output. Images make the exit status 1 \
      unless every image's relative L2 is at or below --tolerance.

      The json, jsonl and tsv formats have stable fields, documented in Formats/qdiff-output.md. \
      Exit status follows diff(1): 0 same within tolerance, 1 different, 2 trouble (an input \
      that cannot be read, or a usage error).
      """,
    version: "0.1.0")

  @Argument(help: "The old checkpoint: a model folder, safetensors file, shard index, HDF5 or GGUF file, or qpack.")
  var old: String

  @Argument(help: "The new checkpoint.")
  var new: String

  @Option(help: "Output format: table, json, jsonl or tsv.")
  var format: OutputFormat = .table

  @Option(help: "Only tensors whose old or new name matches this regular expression.")
  var filter: String?

  @Option(
    help:
      "Relative L2 error at or below which a tensor (or, with --images, an image's features) counts as equal; 0 asks for identical bytes."
  )
  var tolerance: Double = 0

  @Flag(
    help: "Compare every old decoder layer with every new one (linear CKA from weights) and map layers and attention heads.")
  var layerSimilarity = false

  @Option(
    help: ArgumentHelp(
      "Write an SVG figure: the CKA heatmap with the layer mapping, the head mappings, and for a pack the error per layer. Implies --layer-similarity.",
      valueName: "file.svg"))
  var plot: String?

  @Option(
    help: ArgumentHelp(
      "Write the layer and head mappings as JSON for 'lora-rebase --mapping'. Implies --layer-similarity.",
      valueName: "file.json"))
  var saveMapping: String?

  @Option(
    help: ArgumentHelp(
      "Run both models on this text (plain text, or JSONL) and compare perplexity, next-token distributions and hidden states.",
      valueName: "text"))
  var data: String?

  @Option(help: "Tokens per window with --data.")
  var context: Int = 512

  @Option(help: "Compare at most this many windows with --data (default: all).")
  var windows: Int?

  @Option(help: "The text field of a JSONL file given to --data.")
  var field: String = "text"

  @Option(
    parsing: .upToNextOption,
    help: ArgumentHelp(
      "Run both models' vision towers on these PNG or JPEG images (files, or folders of them) and compare their features; give it after the two checkpoints.",
      valueName: "image"))
  var images: [String] = []

  func validate() throws {
    if context < 2 { throw ValidationError("'--context' must be at least 2") }
    if let windows, windows < 1 { throw ValidationError("'--windows' must be at least 1") }
    if data == "-" { throw ValidationError("'--data' needs a file path") }
    if images.contains("-") { throw ValidationError("'--images' needs file or folder paths") }
    if let filter, (try? Regex(filter)) == nil {
      throw ValidationError("'--filter' is not a valid regular expression: '\(filter)'")
    }
    if !(tolerance >= 0) || !tolerance.isFinite {
      throw ValidationError("'--tolerance' must be a finite number at or above 0, not '\(tolerance)'")
    }
    for (flag, path) in [("--plot", plot), ("--save-mapping", saveMapping)] where path == "-" || path == "" {
      throw ValidationError("'\(flag)' needs a file path")
    }
    if old == "-" && new == "-" {
      throw ValidationError("stdin ('-') can be given only once")
    }
  }

  func run() throws {
    var stderr = StandardError()
    var output = StandardOutput()
    var report: DiffReport
    do {
      // Output paths are checked before the comparison runs, and again when written.
      let inputs = [old, new] + [data].compactMap { $0 } + images
      for path in [plot, saveMapping].compactMap({ $0 }) {
        _ = try OutputDestination(path: path, kind: .file, replace: true, inputs: inputs)
      }
      let options = DiffOptions(tolerance: tolerance, filter: try filter.map { try Regex($0) })
      // A GGUF of an architecture the engine runs is compared under Hugging Face names, so it
      // lines up with the checkpoint it came from, tensor by tensor.
      func open(_ path: String) throws -> Checkpoint {
        let checkpoint = try Checkpoint.open(path)
        return checkpoint.format == .gguf ? (try? ModelEvaluation.engineView(of: checkpoint)) ?? checkpoint : checkpoint
      }
      let oldInput = try DiffInput(open(old))
      let newInput = try DiffInput(open(new))
      report = try DiffReport.build(old: oldInput, new: newInput, options: options)
      // With data, the plot and the saved mapping come from activations.
      if layerSimilarity || (data == nil && (plot != nil || saveMapping != nil)) {
        report.layerSimilarity = try LayerSimilarity.fromWeights(old: oldInput, new: newInput)
      }
      if let data {
        report.attach(
          try DataComparison.compare(
            old: oldInput.checkpoint, new: newInput.checkpoint, text: data, context: context,
            windows: windows, field: field))
      }
      if !images.isEmpty {
        report.attach(
          try ImageComparison.compare(
            old: oldInput, new: newInput, files: try ImageComparison.imageFiles(images), tolerance: tolerance))
      }
      if let saveMapping {
        guard let similarity = report.data?.layerSimilarity ?? report.layerSimilarity else {
          throw ValidationError("'--save-mapping': the text is too short for a layer mapping from activations")
        }
        try LayerMappingFile(oldPath: old, newPath: new, layerSimilarity: similarity).write(to: saveMapping, inputs: inputs)
      }
      if let plot { try report.writePlot(to: plot, inputs: inputs) }
      let text: String
      switch format {
      case .table: text = report.table()
      case .json: text = try report.json()
      case .jsonl: text = try report.jsonLines()
      case .tsv: text = report.tsv()
      }
      print(text, terminator: "", to: &output)
    } catch {
      print("qdiff: \(error)", to: &stderr)
      throw ExitCode(2)
    }
    if !report.same { throw ExitCode(1) }
  }

  /// Parses and runs like `ParsableCommand.main()`, except that usage errors exit with 2, the
  /// status diff(1) gives trouble, instead of argument-parser's 64.
  static func main() {
    BLASKernelChoice.restartWithBetterKernelsIfNeeded()
    StandardOutputCheck.install(failureStatus: 2)
    do {
      var command = try parseAsRoot()
      try command.run()
    } catch let code as ExitCode {
      Glibc.exit(code.rawValue)
    } catch {
      if exitCode(for: error) == .success { exit(withError: error) }
      var stderr = StandardError()
      print(fullMessage(for: error), to: &stderr)
      Glibc.exit(2)
    }
  }
}
