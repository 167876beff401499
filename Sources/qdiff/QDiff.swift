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

  @Option(help: "Relative L2 error at or below which a tensor counts as equal; 0 asks for identical bytes.")
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

  func validate() throws {
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
      let options = DiffOptions(tolerance: tolerance, filter: try filter.map { try Regex($0) })
      let oldInput = try DiffInput(Checkpoint.open(old))
      let newInput = try DiffInput(Checkpoint.open(new))
      report = try DiffReport.build(old: oldInput, new: newInput, options: options)
      if layerSimilarity || plot != nil || saveMapping != nil {
        let similarity = try LayerSimilarity.fromWeights(old: oldInput, new: newInput)
        report.layerSimilarity = similarity
        if let saveMapping {
          try LayerMappingFile(oldPath: old, newPath: new, layerSimilarity: similarity)
            .write(to: saveMapping)
        }
      }
      if let plot { try report.writePlot(to: plot) }
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
