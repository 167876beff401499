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

  func validate() throws {
    if let filter, (try? Regex(filter)) == nil {
      throw ValidationError("'--filter' is not a valid regular expression: '\(filter)'")
    }
    if !(tolerance >= 0) || !tolerance.isFinite {
      throw ValidationError("'--tolerance' must be a finite number at or above 0, not '\(tolerance)'")
    }
    if old == "-" && new == "-" {
      throw ValidationError("stdin ('-') can be given only once")
    }
  }

  func run() throws {
    var stderr = StandardError()
    var output = StandardOutput()
    let report: DiffReport
    do {
      let options = DiffOptions(tolerance: tolerance, filter: try filter.map { try Regex($0) })
      report = try DiffReport.build(
        old: DiffInput(Checkpoint.open(old)), new: DiffInput(Checkpoint.open(new)), options: options)
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
