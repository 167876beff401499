import Foundation
import Testing

/// An input with no tensors (Fixtures/no-tensors, made by `Fixtures/make_no_tensors_fixtures.py`)
/// is refused in one line naming it, whatever qconvert was asked to write; no output appears.
@Suite struct QConvertNoTensorsTests {
  struct Case: CustomTestStringConvertible, Sendable {
    var input: String
    var arguments: [String]
    var testDescription: String { "\(input) \(arguments.joined(separator: " "))" }
  }

  static let cases = [
    Case(input: "plain", arguments: []),
    Case(input: "plain", arguments: ["--dry-run"]),
    Case(input: "plain", arguments: ["--layout", "mlx"]),
    Case(input: "plain", arguments: ["--layout", "gguf"]),
    Case(input: "plain", arguments: ["--to", "f16"]),
    Case(input: "pack", arguments: ["--to", "f32"]),
  ]

  @Test(arguments: cases) func refusesAnInputWithoutTensors(_ testCase: Case) throws {
    let folder = FileManager.default.temporaryDirectory.appendingPathComponent(
      "qconvert-empty-\(UUID().uuidString)")
    defer { try? FileManager.default.removeItem(at: folder) }
    let input = fixturesDirectory.appendingPathComponent("no-tensors/\(testCase.input)").path
    let output = folder.appendingPathComponent("out").path
    let run = try runTool("qconvert", [input, "-o", output, "--quiet"] + testCase.arguments)
    #expect(run.status == 1)
    #expect(
      run.stderr
        == "qconvert: \(input)/model.safetensors: holds no tensors; there is nothing to convert\n")
    #expect(run.stdout.isEmpty)
    #expect(!FileManager.default.fileExists(atPath: output))
  }
}
