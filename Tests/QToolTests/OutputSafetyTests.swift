import Foundation
import Testing

#if canImport(Glibc)
  import Glibc
#endif

/// Every tool that writes refuses an output over, around or inside its inputs, never replaces a
/// special file, replaces an existing output only with `--force` (and only a tool output), and
/// lets exactly one of two racing writers win.
@Suite struct OutputSafetyTests {
  static let tinyChat = fixturesDirectory.appendingPathComponent("tiny-chat").path
  static let tinyAdapter = fixturesDirectory.appendingPathComponent("lora/tiny-adapter").path

  /// A scratch copy of the tiny-chat model folder, so the tests can watch it not change.
  func modelCopy(in folder: URL) throws -> URL {
    let copy = folder.appendingPathComponent("model")
    try FileManager.default.copyItem(atPath: Self.tinyChat, toPath: copy.path)
    return copy
  }

  func runTool(_ tool: String, _ arguments: [String], in directory: URL) throws -> ToolRun {
    let process = Process()
    process.executableURL = productsDirectory.appendingPathComponent(tool)
    process.environment = toolEnvironment
    process.arguments = arguments
    process.currentDirectoryURL = directory
    let out = Pipe()
    let err = Pipe()
    process.standardOutput = out
    process.standardError = err
    process.standardInput = FileHandle.nullDevice
    try process.run()
    let outData = out.fileHandleForReading.readDataToEndOfFile()
    let errData = err.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return ToolRun(
      status: process.terminationStatus, stdout: String(decoding: outData, as: UTF8.self),
      stderr: String(decoding: errData, as: UTF8.self))
  }

  /// Each way of naming the input, its folder or a place inside it as the output.
  @Test(arguments: [
    ("model", "is the input"), ("model/", "is the input"), ("sub/../model", "is the input"),
    ("link-to-model/.", "is the input"), (".", "holds the input"), ("model/q4", "lies inside the input"),
  ])
  func qconvertNeverWritesOverOrAroundItsInput(output: String, expected: String) throws {
    let folder = try makeScratchFolder("over-input")
    defer { try? FileManager.default.removeItem(at: folder) }
    let model = try modelCopy(in: folder)
    try FileManager.default.createDirectory(at: folder.appendingPathComponent("sub"), withIntermediateDirectories: false)
    try FileManager.default.createSymbolicLink(atPath: folder.appendingPathComponent("link-to-model").path, withDestinationPath: model.path)
    let before = try folderContents(model)
    for layout in ["native", "mlx", "gguf"] {
      let run = try runTool("qconvert", ["model", "-o", output, "--force", "--layout", layout], in: folder)
      #expect(run.status == 1, "\(layout) -o \(output): \(run.stderr)")
      #expect(run.stderr.contains("output \(expected)"), "\(layout) -o \(output): \(run.stderr)")
      #expect(run.stderr.split(separator: "\n").count == 1)
    }
    #expect(try folderContents(model) == before)
  }

  @Test func aFileInputIsNeitherReplacedNorTurnedIntoAFolder() throws {
    let folder = try makeScratchFolder("file-input")
    defer { try? FileManager.default.removeItem(at: folder) }
    let file = folder.appendingPathComponent("f.safetensors")
    try FileManager.default.copyItem(atPath: Self.tinyChat + "/model.safetensors", toPath: file.path)
    let before = try Data(contentsOf: file)
    for layout in ["native", "gguf"] {
      let run = try runTool("qconvert", [file.path, "-o", file.path, "--force", "--layout", layout], in: folder)
      #expect(run.status == 1 && run.stderr.contains("output is the input"), "\(run.stderr)")
    }
    let dequantize = try runTool("qconvert", [file.path, "-o", file.path, "--force", "--to", "f16"], in: folder)
    #expect(dequantize.status == 1 && dequantize.stderr.contains("output is the input"))
    #expect(try Data(contentsOf: file) == before)
    // Beside the input is the usual place for an output.
    let beside = try runTool("qconvert", [file.path, "-o", "q4", "--quiet"], in: folder)
    #expect(beside.status == 0, "\(beside.stderr)")
  }

  @Test func forceReplacesOnlyAToolOutput() throws {
    let folder = try makeScratchFolder("force")
    defer { try? FileManager.default.removeItem(at: folder) }
    // A folder of unrelated files, and one with a subfolder, are not outputs to replace.
    let notes = folder.appendingPathComponent("notes")
    try FileManager.default.createDirectory(at: notes, withIntermediateDirectories: false)
    try Data("keep me".utf8).write(to: notes.appendingPathComponent("todo.txt"))
    let refused = try runTool("qconvert", [Self.tinyChat, "-o", notes.path, "--force"], in: folder)
    #expect(refused.status == 1 && refused.stderr.contains("holds no model"), "\(refused.stderr)")
    #expect(try Data(contentsOf: notes.appendingPathComponent("todo.txt")) == Data("keep me".utf8))

    let first = try runTool("qconvert", [Self.tinyChat, "-o", "out", "--quiet"], in: folder)
    #expect(first.status == 0, "\(first.stderr)")
    try FileManager.default.createDirectory(
      at: folder.appendingPathComponent("out/nested"), withIntermediateDirectories: false)
    let nested = try runTool("qconvert", [Self.tinyChat, "-o", "out", "--force"], in: folder)
    #expect(nested.status == 1 && nested.stderr.contains("holds the folder 'nested'"), "\(nested.stderr)")
    try FileManager.default.removeItem(at: folder.appendingPathComponent("out/nested"))
    let replaced = try runTool("qconvert", [Self.tinyChat, "-o", "out", "--force", "--bits", "8"], in: folder)
    #expect(replaced.status == 0, "\(replaced.stderr)")
    let config = try String(contentsOf: folder.appendingPathComponent("out/config.json"), encoding: .utf8)
    #expect(config.contains("\"bits\" : 8"))

    // A file where a folder is written, and the other way round, is left alone.
    let text = folder.appendingPathComponent("plain.txt")
    try Data("text".utf8).write(to: text)
    let kind = try runTool("qconvert", [Self.tinyChat, "-o", text.path, "--force"], in: folder)
    #expect(kind.status == 1 && kind.stderr.contains("exists as a file"), "\(kind.stderr)")
    let gguf = try runTool("qconvert", [Self.tinyChat, "-o", "out", "--force", "--layout", "gguf"], in: folder)
    #expect(gguf.status == 1 && gguf.stderr.contains("exists as a folder"), "\(gguf.stderr)")
  }

  @Test func specialFilesAreNeverReplaced() throws {
    let folder = try makeScratchFolder("special")
    defer { try? FileManager.default.removeItem(at: folder) }
    let fifo = folder.appendingPathComponent("fifo").path
    try #require(mkfifo(fifo, 0o600) == 0)
    let runs = [
      ("qconvert", [Self.tinyChat, "-o", fifo, "--force"]),
      ("qconvert", [Self.tinyChat, "-o", fifo, "--force", "--layout", "gguf"]),
      ("qdiff", [Self.tinyChat, Self.tinyChat, "--save-mapping", fifo]),
      ("qdiff", [Self.tinyChat, Self.tinyChat, "--plot", fifo]),
      ("lora-rebase", [Self.tinyChat, Self.tinyChat, Self.tinyAdapter, "-o", fifo, "--force"]),
    ]
    for (tool, arguments) in runs {
      let run = try runTool(tool, arguments, in: folder)
      #expect(run.status != 0, "\(tool) \(arguments)")
      #expect(run.stderr.contains("output is a FIFO, which is never replaced"), "\(tool): \(run.stderr)")
      var info = stat()
      #expect(lstat(fifo, &info) == 0 && (info.st_mode & S_IFMT) == S_IFIFO)
    }
  }

  @Test func loraRebaseNeverReplacesItsInputAdapterAndAsksBeforeReplacing() throws {
    let folder = try makeScratchFolder("lora-output")
    defer { try? FileManager.default.removeItem(at: folder) }
    let adapter = folder.appendingPathComponent("adapter")
    try FileManager.default.copyItem(atPath: Self.tinyAdapter, toPath: adapter.path)
    let before = try folderContents(adapter)
    for force in [[], ["--force"]] {
      let run = try runTool(
        "lora-rebase", [Self.tinyChat, Self.tinyChat, adapter.path, "-o", adapter.path] + force, in: folder)
      #expect(run.status == 1 && run.stderr.contains("output is the input"), "\(run.stderr)")
    }
    #expect(try folderContents(adapter) == before)
    let first = try runTool("lora-rebase", [Self.tinyChat, Self.tinyChat, adapter.path, "-o", "moved"], in: folder)
    #expect(first.status == 0, "\(first.stderr)")
    let again = try runTool("lora-rebase", [Self.tinyChat, Self.tinyChat, adapter.path, "-o", "moved"], in: folder)
    #expect(again.status == 1 && again.stderr.contains("output exists (use '--force' to replace it)"))
    let forced = try runTool(
      "lora-rebase", [Self.tinyChat, Self.tinyChat, adapter.path, "-o", "moved", "--force"], in: folder)
    #expect(forced.status == 0, "\(forced.stderr)")
  }

  /// Two runs for one new output, without `--force`: one writes it, the other fails, whichever
  /// way they interleave (the final rename does not replace what appeared meanwhile).
  @Test func racingWritersWithoutForceLeaveOneWinner() throws {
    let folder = try makeScratchFolder("race")
    defer { try? FileManager.default.removeItem(at: folder) }
    for round in 0..<3 {
      let output = folder.appendingPathComponent("out-\(round)").path
      let processes = try (0..<2).map { _ in try startTool("qconvert", [Self.tinyChat, "-o", output, "--quiet"]) }
      for process in processes { process.waitUntilExit() }
      let winners = processes.filter { $0.terminationStatus == 0 }.count
      #expect(winners == 1, "round \(round): \(processes.map(\.terminationStatus))")
      #expect(FileManager.default.fileExists(atPath: output + "/model.safetensors"))
    }
    #expect(try temporaries(in: folder) == [])
  }
}
