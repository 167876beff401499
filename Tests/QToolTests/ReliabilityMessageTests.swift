import Foundation
import Testing

/// Errors are one line naming the file (and the tensor where there is one) and what was
/// expected, starting with the tool's name; never "Error:", a LAPACK code or a wrong guess.
@Suite struct ReliabilityMessageTests {
  static let llama = fixturesDirectory.appendingPathComponent("tiny-llama").path
  static let chat = fixturesDirectory.appendingPathComponent("tiny-chat").path
  static let adapter = fixturesDirectory.appendingPathComponent("lora/tiny-adapter").path

  static func expectOneLine(_ run: ToolRun, _ tool: String, contains texts: [String], sourceLocation: SourceLocation = #_sourceLocation) {
    #expect(run.stderr.hasPrefix("\(tool): "), "\(run.stderr)", sourceLocation: sourceLocation)
    for text in texts {
      #expect(run.stderr.contains(text), "\(run.stderr)", sourceLocation: sourceLocation)
    }
    #expect(run.stderr.filter { $0 == "\n" }.count == 1, "\(run.stderr)", sourceLocation: sourceLocation)
  }

  /// A NaN in `lora_A` is named with its file, tensor and index before any decomposition.
  @Test func nonFiniteAdapterTensorIsNamed() throws {
    let folder = try makeScratchFolder("nan-adapter")
    defer { try? FileManager.default.removeItem(at: folder) }
    let copy = folder.appendingPathComponent("adapter")
    try FileManager.default.copyItem(at: URL(fileURLWithPath: Self.adapter), to: copy)
    let weights = copy.appendingPathComponent("adapter_model.safetensors")
    var bytes = [UInt8](try Data(contentsOf: weights))
    let length = Int(bytes[0..<8].enumerated().reduce(UInt64(0)) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) })
    let header = try #require(JSONSerialization.jsonObject(with: Data(bytes[8..<(8 + length)])) as? [String: Any])
    let name = try #require(header.keys.sorted().first { $0.contains("lora_A") })
    let entry = try #require(header[name] as? [String: Any])
    #expect(entry["dtype"] as? String == "F32")
    let begin = try #require((entry["data_offsets"] as? [Int])?.first)
    let position = 8 + length + begin + 4 * 3
    withUnsafeBytes(of: Float.nan.bitPattern.littleEndian) { bytes.replaceSubrange(position..<(position + 4), with: $0) }
    try Data(bytes).write(to: weights)

    let run = try runTool("lora-rebase", [Self.llama, Self.llama, copy.path, "-o", folder.appendingPathComponent("out").path])
    #expect(run.status == 1)
    Self.expectOneLine(
      run, "lora-rebase", contains: ["adapter_model.safetensors: ", "'\(name)' holds nan at index [0, 3]", "must be finite"])
    #expect(!run.stderr.contains("LAPACK"))
  }

  struct TokenizerCase: CustomTestStringConvertible, Sendable {
    let name: String
    let edit: @Sendable (String) -> String
    let expected: String
    var testDescription: String { name }
  }

  static let tokenizerCases: [TokenizerCase] = [
    TokenizerCase(name: "cut short", edit: { String($0.prefix(3000)) }, expected: "tokenizer.json: is truncated: its JSON ends after 3000 bytes"),
    TokenizerCase(
      name: "syntax error", edit: { $0.replacing("\"model\"", with: "\"model\" ,", maxReplacements: 1) },
      expected: "tokenizer.json: is not valid JSON at line "),
  ]

  @Test(arguments: tokenizerCases)
  func brokenTokenizerSaysWhere(_ testCase: TokenizerCase) throws {
    let folder = try makeScratchFolder("tokenizer")
    defer { try? FileManager.default.removeItem(at: folder) }
    let copy = folder.appendingPathComponent("model")
    try FileManager.default.copyItem(at: URL(fileURLWithPath: Self.chat), to: copy)
    let tokenizer = copy.appendingPathComponent("tokenizer.json")
    try Data(testCase.edit(String(contentsOf: tokenizer, encoding: .utf8)).utf8).write(to: tokenizer)
    let run = try runTool("qinspect", [copy.path, "--generate", "hi"])
    #expect(run.status == 1)
    Self.expectOneLine(run, "qinspect", contains: [testCase.expected])
    #expect(!run.stderr.contains("not a JSON object"))
  }

  @Test func textFileNamedH5IsNeitherHDF5NorSafetensors() throws {
    let path = fixturesDirectory.appendingPathComponent("malformed/text_named.h5").path
    let run = try runTool("qinspect", [path])
    #expect(run.status == 1)
    Self.expectOneLine(
      run, "qinspect",
      contains: ["text_named.h5: not an HDF5 file", "nor a safetensors file", "starts with text ('This is')"])
    #expect(!run.stderr.contains("header length"))
  }

  @Test(arguments: ["qinspect", "qdiff", "qconvert", "lora-rebase"])
  func symlinkLoopIsReportedAsOne(tool: String) throws {
    let folder = try makeScratchFolder("loop")
    defer { try? FileManager.default.removeItem(at: folder) }
    let a = folder.appendingPathComponent("a.safetensors").path
    let b = folder.appendingPathComponent("b.safetensors").path
    try FileManager.default.createSymbolicLink(atPath: a, withDestinationPath: b)
    try FileManager.default.createSymbolicLink(atPath: b, withDestinationPath: a)
    let out = folder.appendingPathComponent("out").path
    let arguments =
      switch tool {
      case "qdiff": [a, Self.llama]
      case "qconvert": [a, "-o", out]
      case "lora-rebase": [a, Self.llama, Self.adapter, "-o", out]
      default: [a]
      }
    let run = try runTool(tool, arguments)
    #expect(run.status == (tool == "qdiff" ? 2 : 1))
    Self.expectOneLine(run, tool, contains: ["a.safetensors: ", "Too many levels of symbolic links"])
    #expect(!run.stderr.contains("no such file"))
  }

  @Test func loraRebaseNamesItself() throws {
    let run = try runTool("lora-rebase", ["/nonexistent-base", Self.llama, Self.adapter, "-o", "/tmp/unused-output"])
    #expect(run.status == 1)
    Self.expectOneLine(run, "lora-rebase", contains: ["/nonexistent-base: no such file or folder"])
    #expect(!run.stderr.contains("Error:"))
  }
}
