import Foundation
import Testing

#if canImport(Glibc)
  import Glibc
#endif

/// Runs a built tool with stdin read from `stdinPath` (or `/dev/null`), killing it after
/// `seconds`; `timedOut` says the tool had to be killed.
func runTool(
  _ tool: String, _ arguments: [String], stdinPath: String = "/dev/null", stdoutPath: String? = nil,
  timeout seconds: Double
) throws -> (run: ToolRun, timedOut: Bool) {
  let process = Process()
  process.executableURL = productsDirectory.appendingPathComponent(tool)
  process.environment = toolEnvironment
  process.arguments = arguments
  let out = Pipe()
  let err = Pipe()
  if let stdoutPath {
    process.standardOutput = FileHandle(forWritingAtPath: stdoutPath)
  } else {
    process.standardOutput = out
  }
  process.standardError = err
  process.standardInput = FileHandle(forReadingAtPath: stdinPath)
  let finished = DispatchSemaphore(value: 0)
  process.terminationHandler = { _ in finished.signal() }
  try process.run()
  // Drain both pipes while waiting, so a chatty tool cannot block on a full pipe.
  nonisolated(unsafe) var outData = Data()
  nonisolated(unsafe) var errData = Data()
  let readers = DispatchGroup()
  if stdoutPath == nil {
    DispatchQueue.global().async(group: readers) { outData = out.fileHandleForReading.readDataToEndOfFile() }
  }
  DispatchQueue.global().async(group: readers) { errData = err.fileHandleForReading.readDataToEndOfFile() }
  var timedOut = false
  if finished.wait(timeout: .now() + seconds) == .timedOut {
    timedOut = true
    kill(process.processIdentifier, SIGKILL)
    finished.wait()
  }
  readers.wait()
  return (
    ToolRun(
      status: process.terminationStatus, stdout: String(decoding: outData, as: UTF8.self),
      stderr: String(decoding: errData, as: UTF8.self)),
    timedOut
  )
}

/// Inputs that are no checkpoint file: devices, named pipes, endless or lying streams on
/// stdin. Each is refused in a moment with one line naming it, or read as the stream it is.
@Suite struct ReliabilityInputTests {
  static let model = fixturesDirectory.appendingPathComponent("tiny-llama").path

  static func le<T: FixedWidthInteger>(_ value: T) -> [UInt8] {
    withUnsafeBytes(of: value.littleEndian) { [UInt8]($0) }
  }

  /// One line on stderr starting with the tool's name, and nothing else.
  static func expectOneLine(_ run: ToolRun, _ tool: String, contains text: String, sourceLocation: SourceLocation = #_sourceLocation) {
    #expect(run.stderr.hasPrefix("\(tool): "), "\(run.stderr)", sourceLocation: sourceLocation)
    #expect(run.stderr.contains(text), "\(run.stderr)", sourceLocation: sourceLocation)
    #expect(run.stderr.filter { $0 == "\n" }.count == 1, "\(run.stderr)", sourceLocation: sourceLocation)
  }

  @Test func devZeroAsAFileIsRefusedAtOnce() throws {
    let (run, timedOut) = try runTool("qinspect", ["/dev/zero"], timeout: 20)
    #expect(!timedOut)
    #expect(run.status == 1)
    Self.expectOneLine(run, "qinspect", contains: "/dev/zero: ")
  }

  @Test(arguments: ["/dev/zero", "/dev/urandom"])
  func endlessStdinIsRefusedAtOnce(device: String) throws {
    let (run, timedOut) = try runTool("qinspect", ["-"], stdinPath: device, timeout: 20)
    #expect(!timedOut)
    #expect(run.status == 1)
    Self.expectOneLine(run, "qinspect", contains: "-: ")
  }

  @Test func devZeroStaysSmall() throws {
    let run = try peakResidentKilobytes("qinspect", ["--stats", "/dev/zero"])
    #expect(run.status == 1)
    #expect(run.kilobytes < ReliabilityResourceTests.limitKilobytes, "peak RSS \(run.kilobytes) KB")
  }

  /// A folder whose weights, or a shard of whose index, is a link to /dev/zero.
  @Test func weightsLinkedToDevZeroAreRefused() throws {
    let folder = try makeScratchFolder("devzero")
    defer { try? FileManager.default.removeItem(at: folder) }
    let manager = FileManager.default
    try manager.createDirectory(at: folder.appendingPathComponent("single"), withIntermediateDirectories: true)
    try manager.createSymbolicLink(
      atPath: folder.appendingPathComponent("single/model.safetensors").path, withDestinationPath: "/dev/zero")
    let sharded = folder.appendingPathComponent("sharded")
    try manager.createDirectory(at: sharded, withIntermediateDirectories: true)
    try manager.createSymbolicLink(
      atPath: sharded.appendingPathComponent("model-00001-of-00001.safetensors").path, withDestinationPath: "/dev/zero")
    try Data(#"{"weight_map":{"w":"model-00001-of-00001.safetensors"}}"#.utf8)
      .write(to: sharded.appendingPathComponent("model.safetensors.index.json"))
    for path in [folder.appendingPathComponent("single").path, sharded.path] {
      let (run, timedOut) = try runTool("qinspect", [path], timeout: 20)
      #expect(!timedOut, "\(path)")
      #expect(run.status == 1, "\(path)")
      Self.expectOneLine(run, "qinspect", contains: "model")
    }
  }

  /// A named pipe nobody writes to reads as empty at once; one that is written to is read
  /// once, as a stream.
  @Test func namedPipeIsOpenedOnce() throws {
    let folder = try makeScratchFolder("fifo")
    defer { try? FileManager.default.removeItem(at: folder) }
    let fifo = folder.appendingPathComponent("model.safetensors").path
    #expect(mkfifo(fifo, 0o600) == 0)
    let (idle, idleTimedOut) = try runTool("qinspect", [fifo], timeout: 20)
    #expect(!idleTimedOut)
    #expect(idle.status == 1)
    Self.expectOneLine(idle, "qinspect", contains: "file is empty")

    let bytes = try Data(contentsOf: URL(fileURLWithPath: Self.model + "/model.safetensors"))
    let writer = Thread {
      // Opening for writing waits for the reader, then the whole model goes through.
      if let handle = FileHandle(forWritingAtPath: fifo) {
        try? handle.write(contentsOf: bytes)
        try? handle.close()
      }
    }
    writer.start()
    let (fed, fedTimedOut) = try runTool("qinspect", ["--format", "json", fifo], timeout: 60)
    #expect(!fedTimedOut)
    #expect(fed.status == 0, "\(fed.stderr)")
    #expect(fed.stdout.contains("model.norm.weight"))
  }

  @Test func namedPipeOfAnHDF5NameIsRefused() throws {
    let folder = try makeScratchFolder("fifo-h5")
    defer { try? FileManager.default.removeItem(at: folder) }
    let fifo = folder.appendingPathComponent("model.h5").path
    #expect(mkfifo(fifo, 0o600) == 0)
    let (run, timedOut) = try runTool("qinspect", [fifo], timeout: 20)
    #expect(!timedOut)
    #expect(run.status == 1)
    Self.expectOneLine(run, "qinspect", contains: "is a named pipe, not a regular file; HDF5 input must be a regular")
  }

  struct StreamCase: CustomTestStringConvertible, Sendable {
    let name: String
    let bytes: [UInt8]
    let expected: String
    var testDescription: String { name }
  }

  static func stream(_ header: String, data: Int) -> [UInt8] {
    var json = Array(header.utf8)
    while json.count % 8 != 0 { json.append(0x20) }
    return le(UInt64(json.count)) + json + [UInt8](repeating: 0, count: data)
  }

  static let streamCases: [StreamCase] = [
    StreamCase(
      name: "header longer than the stream", bytes: le(UInt64(4096)) + Array(#"{"a":"#.utf8),
      expected: "runs past the end of the file (13 bytes)"),
    StreamCase(name: "absurd header length", bytes: le(UInt64(1) << 62) + [0x7B], expected: "exceeds the 100000000-byte limit"),
    StreamCase(
      name: "data beyond any disk",
      bytes: stream(#"{"w":{"dtype":"F32","shape":[1099511627776,1024],"data_offsets":[0,4503599627370496]}}"#, data: 16),
      expected: "bytes free in"),
    StreamCase(
      name: "data cut short", bytes: stream(#"{"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}"#, data: 8),
      expected: "file is truncated"),
    StreamCase(
      name: "stream goes on", bytes: stream(#"{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#, data: 12),
      expected: "the stream goes on past the"),
  ]

  @Test(arguments: streamCases)
  func lyingStdinIsRefusedEarly(_ testCase: StreamCase) throws {
    let run = try runTool("qinspect", ["-"], stdin: Data(testCase.bytes))
    #expect(run.status == 1)
    Self.expectOneLine(run, "qinspect", contains: "-: ")
    #expect(run.stderr.contains(testCase.expected), "\(run.stderr)")
  }

  struct SideFileCase: CustomTestStringConvertible, Sendable {
    let name: String
    /// The side file of a copy of tiny-chat to replace, and with what.
    let file: String
    let replacement: Replacement
    let arguments: [String]
    let expected: String
    var testDescription: String { name }

    enum Replacement: Sendable { case devZero, fifo, loop }
  }

  static let text = fixturesDirectory.appendingPathComponent("tiny-chat.sample.txt").path

  static let sideFileCases: [SideFileCase] = [
    SideFileCase(
      name: "tokenizer.json in a link loop", file: "tokenizer.json", replacement: .loop, arguments: ["--generate", "hi"],
      expected: "tokenizer.json: cannot stat: Too many levels of symbolic links"),
    SideFileCase(
      name: "tokenizer.json a named pipe", file: "tokenizer.json", replacement: .fifo, arguments: ["--generate", "hi"],
      expected: "tokenizer.json: is empty"),
    SideFileCase(
      name: "tokenizer.json linked to /dev/zero", file: "tokenizer.json", replacement: .devZero,
      arguments: ["--generate", "hi"], expected: "tokenizer.json: "),
    SideFileCase(
      name: "config.json linked to /dev/zero", file: "config.json", replacement: .devZero, arguments: [],
      expected: "config.json: not valid JSON"),
    SideFileCase(
      name: "perplexity text linked to /dev/zero", file: "text.txt", replacement: .devZero,
      arguments: ["--perplexity", "FILE"], expected: "text.txt: is larger than the 67108864-byte limit"),
    SideFileCase(
      name: "perplexity text a named pipe", file: "text.txt", replacement: .fifo, arguments: ["--perplexity", "FILE"],
      expected: "text has 0 tokens"),
  ]

  /// Side files (tokenizer, config, texts) in place of which stands a device, a named pipe or
  /// a link loop fail at once with one line naming them.
  @Test(arguments: sideFileCases)
  func sideFilesAreBounded(_ testCase: SideFileCase) throws {
    let folder = try makeScratchFolder("side")
    defer { try? FileManager.default.removeItem(at: folder) }
    let copy = folder.appendingPathComponent("model")
    try FileManager.default.copyItem(at: fixturesDirectory.appendingPathComponent("tiny-chat"), to: copy)
    let target = copy.appendingPathComponent(testCase.file).path
    try? FileManager.default.removeItem(atPath: target)
    switch testCase.replacement {
    case .devZero: try FileManager.default.createSymbolicLink(atPath: target, withDestinationPath: "/dev/zero")
    case .fifo: #expect(mkfifo(target, 0o600) == 0)
    case .loop:
      try FileManager.default.createSymbolicLink(atPath: target, withDestinationPath: target + ".other")
      try FileManager.default.createSymbolicLink(atPath: target + ".other", withDestinationPath: target)
    }
    let arguments = [copy.path] + testCase.arguments.map { $0 == "FILE" ? target : $0 }
    let (run, timedOut) = try runTool("qinspect", arguments, timeout: 30)
    #expect(!timedOut)
    #expect(run.status == 1)
    Self.expectOneLine(run, "qinspect", contains: testCase.expected)
  }

  /// HDF5 and GGUF need seeking: from a pipe they are refused by name.
  @Test(arguments: ["hdf5/basic.h5", "gguf/all_types.gguf"])
  func seekableFormatOnAPipeIsRefused(fixture: String) throws {
    let bytes = try Data(contentsOf: fixturesDirectory.appendingPathComponent(fixture))
    let run = try runTool("qinspect", ["-"], stdin: bytes)
    #expect(run.status == 1)
    Self.expectOneLine(run, "qinspect", contains: "file arriving as a stream; ")
    #expect(run.stderr.contains("input must be a regular, seekable file"))
  }

  @Test func imageBehindALinkLoopIsSaidSo() throws {
    let folder = try makeScratchFolder("image-loop")
    defer { try? FileManager.default.removeItem(at: folder) }
    let a = folder.appendingPathComponent("a.png").path
    try FileManager.default.createSymbolicLink(atPath: a, withDestinationPath: a + ".other")
    try FileManager.default.createSymbolicLink(atPath: a + ".other", withDestinationPath: a)
    let model = fixturesDirectory.appendingPathComponent("tiny-llava").path
    let (run, timedOut) = try runTool("qdiff", [model, model, "--images", a], timeout: 60)
    #expect(!timedOut)
    #expect(run.status == 2)
    Self.expectOneLine(run, "qdiff", contains: "a.png: cannot stat: Too many levels of symbolic links")
  }

  @Test func validStdinStillReads() throws {
    let bytes = try Data(contentsOf: URL(fileURLWithPath: Self.model + "/model.safetensors"))
    let run = try runTool("qinspect", ["--stats", "-"], stdin: bytes)
    #expect(run.status == 0, "\(run.stderr)")
    #expect(run.stdout.contains("model.norm.weight"))
  }
}
