import Foundation
import Testing

/// Absurd sizes on the command line (`--context`, `--max-tokens`) are usage errors checked
/// against the model before anything is allocated: one line, exit 64 (2 for qdiff, whose
/// usage errors are trouble as diff(1) has it), never a trap.
@Suite struct ReliabilityLimitTests {
  static let model = fixturesDirectory.appendingPathComponent("tiny-chat").path
  static let text = fixturesDirectory.appendingPathComponent("tiny-chat.sample.txt").path
  static let adapter = fixturesDirectory.appendingPathComponent("lora/tiny-adapter").path

  struct LimitCase: CustomTestStringConvertible, Sendable {
    let name: String
    let tool: String
    let arguments: [String]
    let status: Int32
    let expected: String
    var testDescription: String { name }
  }

  static let absurd = "100000000"

  static let cases: [LimitCase] = [
    LimitCase(
      name: "qinspect --perplexity --context", tool: "qinspect",
      arguments: [model, "--perplexity", text, "--context", absurd], status: 64,
      expected: "'--context 100000000' exceeds the 512 positions of "),
    LimitCase(
      name: "qinspect --generate --max-tokens", tool: "qinspect",
      arguments: [model, "--generate", "hi", "--max-tokens", absurd], status: 64,
      expected: "'--max-tokens 100000000' with the 2 tokens of the prompt exceeds the 512 positions"),
    LimitCase(
      name: "qdiff --data --context", tool: "qdiff", arguments: [model, model, "--data", text, "--context", absurd],
      status: 2, expected: "'--context 100000000' exceeds the 512 positions of "),
    LimitCase(
      name: "lora-rebase --finetune --context", tool: "lora-rebase",
      arguments: [model, model, adapter, "-o", "OUT", "--finetune", text, "--context", absurd], status: 64,
      expected: "'--context 100000000' exceeds the 512 positions of "),
    LimitCase(
      name: "lora-rebase --eval --eval-context", tool: "lora-rebase",
      arguments: [model, model, adapter, "-o", "OUT", "--eval", text, "--eval-context", absurd], status: 64,
      expected: "'--eval-context 100000000' exceeds the 512 positions of "),
    LimitCase(
      name: "lora-rebase --data --data-context", tool: "lora-rebase",
      arguments: [model, model, adapter, "-o", "OUT", "--data", text, "--data-context", absurd], status: 64,
      expected: "'--data-context 100000000' exceeds the 512 positions of "),
    LimitCase(
      name: "qconvert --calib --calib-context", tool: "qconvert",
      arguments: [model, "-o", "OUT", "--calib", text, "--calib-context", absurd], status: 64,
      expected: "'--calib-context 100000000' exceeds the 512 positions of "),
  ]

  @Test(arguments: cases)
  func absurdSizeIsAUsageError(_ testCase: LimitCase) throws {
    let folder = try makeScratchFolder("limits")
    defer { try? FileManager.default.removeItem(at: folder) }
    let output = folder.appendingPathComponent("out").path
    let arguments = testCase.arguments.map { $0 == "OUT" ? output : $0 }
    let (run, timedOut) = try runTool(testCase.tool, arguments, timeout: 120)
    #expect(!timedOut)
    #expect(run.status == testCase.status, "\(run.stderr)")
    #expect(run.stderr.hasPrefix("\(testCase.tool): "), "\(run.stderr)")
    #expect(run.stderr.contains(testCase.expected), "\(run.stderr)")
    #expect(run.stderr.filter { $0 == "\n" }.count == 1, "\(run.stderr)")
    #expect(!FileManager.default.fileExists(atPath: output))
  }

  /// Without max_position_embeddings, the memory the run would need decides.
  @Test(arguments: [["--perplexity", text, "--context", absurd], ["--generate", "hi", "--max-tokens", "100000000000"]])
  func sizeBeyondMemoryIsAUsageError(options: [String]) throws {
    let folder = try makeScratchFolder("limits-memory")
    defer { try? FileManager.default.removeItem(at: folder) }
    let copy = folder.appendingPathComponent("model")
    try FileManager.default.copyItem(at: URL(fileURLWithPath: Self.model), to: copy)
    let configURL = copy.appendingPathComponent("config.json")
    var config = try #require(JSONSerialization.jsonObject(with: Data(contentsOf: configURL)) as? [String: Any])
    config.removeValue(forKey: "max_position_embeddings")
    try JSONSerialization.data(withJSONObject: config).write(to: configURL)
    let (run, timedOut) = try runTool("qinspect", [copy.path] + options, timeout: 120)
    #expect(!timedOut)
    #expect(run.status == 64, "\(run.stderr)")
    #expect(run.stderr.contains("of memory for "), "\(run.stderr)")
    #expect(run.stderr.contains("more than the "), "\(run.stderr)")
    #expect(run.stderr.filter { $0 == "\n" }.count == 1, "\(run.stderr)")
  }
}
