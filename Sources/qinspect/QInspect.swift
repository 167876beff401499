import ArgumentParser
import Foundation
import QFormats
import QToolSupport

@main
struct QInspect: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "qinspect",
    abstract: "Show what is inside a checkpoint or pack.",
    discussion: """
      Lists every tensor (name, dtype, shape, parameters, bytes) with totals, a summary by model \
      component (vision tower, projector, language model) and by layer pattern, and the \
      recognised architecture. Inputs are model folders, safetensors files, shard index files, \
      HDF5 files, GGUF files, or '-' for a safetensors stream on stdin. With '--perplexity' or \
      '--generate' the model's language model runs on text and only its result is printed (with \
      '--stats' the tables too): packs run from their low-bit codes, llama- and qwen2-architecture \
      GGUF files with the config and tokenizer of their metadata, MLX-quantized folders \
      dequantized.

      The json, jsonl and tsv formats have stable fields, documented in Formats/qinspect-output.md. \
      Exit status: 0 success, 1 an input could not be read, 64 usage error.
      """,
    version: "0.1.0")

  /// Runs with stdout checked and errors named after the tool (`mainCheckingOutput`).
  static func main() {
    mainCheckingOutput()
  }

  @Argument(help: "Checkpoints to inspect; '-' reads a safetensors stream from stdin.")
  var paths: [String]

  @Flag(help: "Compute per-tensor min, max, mean, std, absmax, zero fraction, NaN and Inf counts.")
  var stats = false

  @Flag(help: "Answer from the header alone, without reading any tensor data.")
  var headerOnly = false

  @Option(help: "Only tensors whose name matches this regular expression.")
  var filter: String?

  @Flag(help: "Recompute a pack's per-tensor checksums; name each tensor that does not match and exit 1.")
  var verify = false

  @Option(help: "Output format: table, json, jsonl or tsv.")
  var format: OutputFormat = .table

  @Option(help: ArgumentHelp(
    "Measure the language model's perplexity on a text or JSONL file.", valueName: "text-file"))
  var perplexity: String?

  @Option(help: "Tokens per perplexity window.")
  var context: Int = 512

  @Option(help: "Tokens between window starts (default: the context, disjoint windows).")
  var stride: Int?

  @Option(help: "Score at most this many windows.")
  var windows: Int?

  @Option(help: ArgumentHelp(
    "Which targets of each window are scored: all (but the first), or the second half of whole, disjoint windows (as llama-perplexity scores).",
    valueName: "scoring"))
  var scoring: PerplexityScoring = .all

  @Option(help: ArgumentHelp(
    "Progress of the perplexity windows on stderr: auto (one line redrawn on a terminal, else a line per window), lines, json or none.",
    valueName: "style"))
  var progress: ProgressStyle = .auto

  @Option(help: "The text field of a JSONL file.")
  var field: String = "text"

  @Option(help: ArgumentHelp("Greedily continue a prompt, for a quick look that a model still speaks.", valueName: "prompt"))
  var generate: String?

  @Option(help: "Tokens to generate with '--generate'.")
  var maxTokens: Int = 32

  @Flag(help: "Wrap the '--generate' prompt in the tokenizer's chat template.")
  var chat = false

  @Option(help: ArgumentHelp(
    "With '--generate' on a vision-language model (LLaVA, Idefics3/SmolVLM, InternVL): a PNG or JPEG "
      + "image for the prompt, one tile of the tower's size (it goes at the prompt's image token, "
      + "'<image>' or InternVL's '<IMG_CONTEXT>', between the markers its processor adds, or before the "
      + "prompt).", valueName: "image-file"))
  var image: String?

  func validate() throws {
    if verify && (stats || headerOnly) {
      throw ValidationError("'--verify' cannot be combined with '--stats' or '--header-only'")
    }
    if stats && headerOnly {
      throw ValidationError("'--stats' reads tensor data; it cannot be combined with '--header-only'")
    }
    if let filter, (try? Regex(filter)) == nil {
      throw ValidationError("'--filter' is not a valid regular expression: '\(filter)'")
    }
    if headerOnly && (perplexity != nil || generate != nil) {
      throw ValidationError("'--perplexity' and '--generate' run the model; they cannot be combined with '--header-only'")
    }
    if context < 2 { throw ValidationError("'--context' must be at least 2") }
    if scoring == .secondHalf && stride != nil {
      throw ValidationError("'--stride' and '--scoring second-half' cannot be combined; second-half windows are disjoint")
    }
    if let stride, stride < 1 || stride > context {
      throw ValidationError("'--stride' must be between 1 and the context (\(context))")
    }
    if let windows, windows < 1 { throw ValidationError("'--windows' must be at least 1") }
    if image != nil && generate == nil {
      throw ValidationError("'--image' is given with '--generate'")
    }
    if maxTokens < 0 { throw ValidationError("'--max-tokens' cannot be negative") }
    if paths.filter({ $0 == "-" }).count > 1 {
      throw ValidationError("stdin ('-') can be given only once")
    }
  }

  func run() throws {
    let options = InspectionOptions(
      statistics: stats, filter: try filter.map { try Regex($0) })
    var reports: [InspectionReport] = []
    var failed = false
    var stderr = StandardError()
    var output = StandardOutput()
    if format == .tsv { print(InspectionReport.tsvHeader(withStats: stats), terminator: "", to: &output) }
    if verify {
      for path in paths {
        do {
          let result = try PackVerification.verify(Checkpoint.open(path))
          for message in result.mismatches { print("qinspect: \(message)", to: &stderr) }
          if !result.mismatches.isEmpty { failed = true }
          print(
            "\(path): \(result.checked) checksums, \(result.mismatches.isEmpty ? "all match" : "\(result.mismatches.count) do not match")",
            to: &output)
        } catch {
          print("qinspect: \(error)", to: &stderr)
          failed = true
        }
      }
      if failed { throw ExitCode.failure }
      return
    }
    for path in paths {
      var report: InspectionReport
      do {
        let checkpoint = try Checkpoint.open(path)
        report = try InspectionReport.build(for: checkpoint, options: options)
        if perplexity != nil || generate != nil {
          let loaded =
            image != nil
            ? try ModelEvaluation.loadVisionLanguage(checkpoint) : try ModelEvaluation.load(checkpoint)
          if let perplexity {
            report.perplexity = try ModelEvaluation.perplexity(
              of: loaded, textFile: perplexity, field: field, context: context, stride: stride,
              maxWindows: windows, scoring: scoring, progress: progress)
          }
          if let generate {
            report.generation = try ModelEvaluation.generate(
              with: loaded, prompt: generate, maxTokens: maxTokens, chat: chat, imageFile: image)
          }
        }
      } catch let error as OptionLimitError {
        print("qinspect: \(error)", to: &stderr)
        throw ExitCode.validationFailure
      } catch {
        print("qinspect: \(error)", to: &stderr)
        failed = true
        continue
      }
      switch format {
      case .table:
        if !reports.isEmpty { print("", to: &output) }
        // Running the model, the result is what was asked for; the tensor table only with --stats.
        let evaluated = report.perplexity != nil || report.generation != nil
        print(
          evaluated && !stats ? report.evaluationText() : report.table(withStats: stats), terminator: "", to: &output)
      case .jsonl: print(try report.jsonLines(), terminator: "", to: &output)
      case .tsv: print(report.tsvRows(withStats: stats), terminator: "", to: &output)
      case .json: break
      }
      reports.append(report)
    }
    if format == .json { print(try InspectionReport.json(reports), terminator: "", to: &output) }
    if failed { throw ExitCode.failure }
  }
}
