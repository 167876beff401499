import Foundation
import Testing

/// Every tool that runs a model refuses a `model_type` the engine does not implement.
///
/// The refusal is one line naming config.json; tools that only read tensors still work on any
/// model type. The checkpoints are tiny-chat (Llama weight names) beside a config from
/// Fixtures/model-types.
@Suite struct ModelTypeToolTests {
  static let root = fixturesDirectory.appendingPathComponent("model-types")
  static let tinyChat = fixturesDirectory.appendingPathComponent("tiny-chat")
  static let sample = fixturesDirectory.appendingPathComponent("tiny-chat.sample.txt").path
  static let adapter = fixturesDirectory.appendingPathComponent("lora/tiny-adapter").path

  struct Case: CustomTestStringConvertible, Sendable {
    var name: String
    var message: String
    var testDescription: String { name }
  }

  static func refused() throws -> [Case] {
    let text = try String(contentsOf: root.appendingPathComponent("expected.tsv"), encoding: .utf8)
    return text.split(separator: "\n").dropFirst().map { line in
      let cells = line.split(separator: "\t", omittingEmptySubsequences: false).map(String.init)
      return Case(name: cells[0], message: cells.count > 1 ? cells[1] : "")
    }.filter { !$0.message.isEmpty }
  }

  /// A model running one of the tools, with the arguments after the checkpoint folder.
  struct Use: CustomTestStringConvertible, Sendable {
    var tool: String
    var status: Int32
    var arguments: @Sendable (_ folder: String, _ output: String) -> [String]
    var testDescription: String
  }

  static let uses: [Use] = [
    Use(
      tool: "qinspect", status: 1,
      arguments: { f, _ in [f, "--perplexity", sample, "--context", "32", "--windows", "1"] },
      testDescription: "qinspect --perplexity"),
    Use(
      tool: "qinspect", status: 1,
      arguments: { f, _ in [f, "--generate", "The", "--max-tokens", "2"] },
      testDescription: "qinspect --generate"),
    Use(
      tool: "qdiff", status: 2,
      arguments: { f, _ in [f, f, "--data", sample, "--context", "32", "--windows", "1"] },
      testDescription: "qdiff --data"),
    Use(
      tool: "qconvert", status: 1,
      arguments: { f, o in
        [
          f, "-o", o, "--method", "gptq", "--calib", sample, "--calib-context", "32",
          "--calib-windows", "1",
        ]
      },
      testDescription: "qconvert --method gptq"),
    Use(
      tool: "qconvert", status: 1,
      arguments: { f, o in
        [
          f, "-o", o, "--method", "adaround", "--calib", sample, "--calib-context", "32",
          "--calib-windows", "1",
        ]
      },
      testDescription: "qconvert --method adaround"),
    Use(
      tool: "qconvert", status: 1,
      arguments: { f, o in
        [
          f, "-o", o, "--bits", "2", "--method", "speedq", "--calib", sample, "--calib-context",
          "32", "--calib-windows", "1",
        ]
      },
      testDescription: "qconvert --method speedq"),
    Use(
      tool: "qconvert", status: 1,
      arguments: { f, o in [f, "-o", o + ".gguf", "--layout", "gguf", "--gguf-type", "q8_0"] },
      testDescription: "qconvert --layout gguf"),
    Use(
      tool: "lora-rebase", status: 1,
      arguments: { f, o in
        [f, f, adapter, "-o", o, "--finetune", sample, "--steps", "1", "--context", "32"]
      },
      testDescription: "lora-rebase --finetune"),
  ]

  /// tiny-chat's weights and tokenizer beside the named config, in `model/` of a fresh folder.
  func checkpoint(_ name: String) throws -> (scratch: URL, folder: URL, config: String) {
    let manager = FileManager.default
    let scratch = manager.temporaryDirectory.appendingPathComponent(
      "model-type-\(name)-\(UUID().uuidString)")
    let folder = scratch.appendingPathComponent("model")
    try manager.createDirectory(at: folder, withIntermediateDirectories: true)
    for file in ["model.safetensors", "tokenizer.json", "tokenizer_config.json"] {
      try manager.createSymbolicLink(
        at: folder.appendingPathComponent(file),
        withDestinationURL: Self.tinyChat.appendingPathComponent(file))
    }
    let config = folder.appendingPathComponent("config.json")
    try manager.copyItem(at: Self.root.appendingPathComponent("\(name).config.json"), to: config)
    return (scratch, folder, config.path)
  }

  @Test(arguments: try refused(), uses) func everyModelRunRefuses(_ testCase: Case, _ use: Use)
    throws
  {
    let (scratch, folder, config) = try checkpoint(testCase.name)
    defer { try? FileManager.default.removeItem(at: scratch) }
    let output = scratch.appendingPathComponent("out").path
    let run = try runTool(use.tool, use.arguments(folder.path, output))
    #expect(run.status == use.status, "\(run.stderr)")
    #expect(run.stderr == "\(use.tool): \(config): \(testCase.message)\n")
    #expect(!FileManager.default.fileExists(atPath: output))
    #expect(!FileManager.default.fileExists(atPath: output + ".gguf"))
  }

  @Test(arguments: try refused()) func tensorToolsWorkOnAnyModelType(_ testCase: Case) throws {
    let (scratch, folder, _) = try checkpoint(testCase.name)
    defer { try? FileManager.default.removeItem(at: scratch) }
    let listing = try runTool("qinspect", [folder.path])
    #expect(listing.status == 0, "\(listing.stderr)")
    #expect(listing.stdout.contains("model.layers.1.mlp.down_proj.weight"))
    let output = scratch.appendingPathComponent("out").path
    let convert = try runTool(
      "qconvert", [folder.path, "-o", output, "--bits", "8", "--group-size", "32", "--quiet"])
    #expect(convert.status == 0, "\(convert.stderr)")
    let diff = try runTool("qdiff", [Self.tinyChat.path, folder.path])
    #expect(diff.status == 1 || diff.status == 0, "\(diff.stderr)")
    #expect(diff.stderr.isEmpty, "\(diff.stderr)")
  }

  @Test func aMistralWithoutSlidingWindowRuns() throws {
    let (scratch, folder, _) = try checkpoint("mistral")
    defer { try? FileManager.default.removeItem(at: scratch) }
    let run = try runTool("qinspect", [folder.path, "--generate", "The", "--max-tokens", "2"])
    #expect(run.status == 0, "\(run.stderr)")
  }
}
