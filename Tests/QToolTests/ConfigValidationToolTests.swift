import Foundation
import Testing

/// Every tool refuses a config.json the engine would reject (Fixtures/malformed-configs, made by
/// `Fixtures/make_malformed_config_fixtures.py`), in one line naming config.json and the key.
@Suite struct ConfigValidationToolTests {
  static let root = fixturesDirectory.appendingPathComponent("malformed-configs")

  struct Case: CustomTestStringConvertible, Sendable {
    var name: String
    var key: String
    var message: String
    var testDescription: String { name }
  }

  static func cases() throws -> [Case] {
    let text = try String(contentsOf: root.appendingPathComponent("expected.tsv"), encoding: .utf8)
    return text.split(separator: "\n").dropFirst().map { line in
      let cells = line.split(separator: "\t", omittingEmptySubsequences: false).map(String.init)
      return Case(
        name: cells[0], key: cells.count > 1 ? cells[1] : "",
        message: cells.count > 2 ? cells[2] : "")
    }
  }

  static func invalid() throws -> [Case] { try cases().filter { !$0.key.isEmpty } }

  func scratch() throws -> URL {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent(
      "config-validation-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    return url
  }

  func expectRefused(_ run: ToolRun, tool: String, status: Int32, _ testCase: Case) {
    let folder = Self.root.appendingPathComponent(testCase.name).path
    #expect(run.status == status, "\(run.stderr)")
    #expect(run.stderr == "\(tool): \(folder)/config.json: '\(testCase.key)' \(testCase.message)\n")
  }

  @Test(arguments: try invalid()) func qconvertRefuses(_ testCase: Case) throws {
    let work = try scratch()
    defer { try? FileManager.default.removeItem(at: work) }
    let output = work.appendingPathComponent("out").path
    let folder = Self.root.appendingPathComponent(testCase.name).path
    expectRefused(
      try runTool("qconvert", [folder, "-o", output, "--quiet"]), tool: "qconvert", status: 1,
      testCase)
    #expect(!FileManager.default.fileExists(atPath: output))
  }

  @Test(arguments: try invalid()) func qinspectRefuses(_ testCase: Case) throws {
    let folder = Self.root.appendingPathComponent(testCase.name).path
    expectRefused(try runTool("qinspect", [folder]), tool: "qinspect", status: 1, testCase)
  }

  @Test(arguments: try invalid()) func qdiffRefuses(_ testCase: Case) throws {
    let valid = Self.root.appendingPathComponent("valid").path
    let folder = Self.root.appendingPathComponent(testCase.name).path
    expectRefused(try runTool("qdiff", [valid, folder]), tool: "qdiff", status: 2, testCase)
  }

  @Test func theValidModelConverts() throws {
    let work = try scratch()
    defer { try? FileManager.default.removeItem(at: work) }
    let folder = Self.root.appendingPathComponent("valid").path
    let run = try runTool(
      "qconvert",
      [folder, "-o", work.appendingPathComponent("out").path, "--quiet", "--group-size", "0"])
    #expect(run.status == 0, "\(run.stderr)")
    #expect(try runTool("qinspect", [folder]).status == 0)
  }
}
