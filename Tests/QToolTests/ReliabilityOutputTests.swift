import Foundation
import Testing

#if canImport(Glibc)
  import Glibc
#endif

/// Every tool checks its writes to stdout: a full disk fails with one line and a non-zero
/// status (2 for qdiff, trouble as diff(1) says), a closed pipe ends quietly.
@Suite struct ReliabilityOutputTests {
  static let model = fixturesDirectory.appendingPathComponent("tiny-llama").path
  static let adapter = fixturesDirectory.appendingPathComponent("lora/tiny-adapter").path

  struct OutputCase: CustomTestStringConvertible, Sendable {
    let tool: String
    let arguments: [String]
    let status: Int32
    var testDescription: String { "\(tool) \(arguments.first ?? "")" }
  }

  /// Arguments whose output folder, if any, is made fresh under `folder`.
  static func cases(in folder: String) -> [OutputCase] {
    [
      OutputCase(tool: "qinspect", arguments: [model], status: 1),
      OutputCase(tool: "qinspect", arguments: ["--format", "json", model], status: 1),
      OutputCase(tool: "qinspect", arguments: ["--help"], status: 1),
      OutputCase(tool: "qdiff", arguments: [model, model], status: 2),
      OutputCase(tool: "qconvert", arguments: [model, "-o", folder + "/packed", "--dry-run"], status: 1),
      OutputCase(tool: "lora-rebase", arguments: [model, model, adapter, "-o", folder + "/moved"], status: 1),
    ]
  }

  @Test(arguments: ["qinspect", "qdiff", "qconvert", "lora-rebase"])
  func fullDiskFailsWithOneLine(tool: String) throws {
    let folder = try makeScratchFolder("devfull")
    defer { try? FileManager.default.removeItem(at: folder) }
    for testCase in Self.cases(in: folder.path) where testCase.tool == tool {
      let (run, timedOut) = try runTool(tool, testCase.arguments, stdoutPath: "/dev/full", timeout: 120)
      #expect(!timedOut)
      #expect(run.status == testCase.status, "\(testCase): \(run.stderr)")
      #expect(run.stderr == "\(tool): standard output: No space left on device\n", "\(testCase)")
    }
  }

  /// The reader is gone before the tool writes: no message, and the tool ends by SIGPIPE.
  @Test(arguments: ["qinspect", "qdiff"])
  func closedPipeEndsQuietly(tool: String) throws {
    var descriptors: [Int32] = [0, 0]
    #expect(pipe(&descriptors) == 0)
    close(descriptors[0])
    let process = Process()
    process.executableURL = productsDirectory.appendingPathComponent(tool)
    process.environment = toolEnvironment
    process.arguments = tool == "qdiff" ? [Self.model, Self.model] : [Self.model]
    process.standardOutput = FileHandle(fileDescriptor: descriptors[1], closeOnDealloc: true)
    let err = Pipe()
    process.standardError = err
    process.standardInput = FileHandle.nullDevice
    try process.run()
    let errData = err.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    #expect(String(decoding: errData, as: UTF8.self) == "")
    #expect(process.terminationReason == .uncaughtSignal && process.terminationStatus == SIGPIPE)
  }
}
