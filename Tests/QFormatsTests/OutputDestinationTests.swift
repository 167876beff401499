import Foundation
import Testing

@testable import QFormats

#if canImport(Glibc)
  import Glibc
#endif

/// The rules of `OutputDestination`, checked on the file system itself.
@Suite struct OutputDestinationTests {
  func scratch(_ label: String) throws -> String {
    let path = FileManager.default.temporaryDirectory
      .appendingPathComponent("output-destination-\(label)-\(getpid())-\(UInt32.random(in: 0...UInt32.max))").path
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return path
  }

  func write(_ text: String, to path: String) throws {
    try Data(text.utf8).write(to: URL(fileURLWithPath: path))
  }

  @Test func pathsInsideFoldersAreComparedByComponent() {
    #expect(OutputDestination.isInside("/a/b/c", "/a/b"))
    #expect(!OutputDestination.isInside("/a/bc", "/a/b"))
    #expect(!OutputDestination.isInside("/a/b", "/a/b"))
    #expect(OutputDestination.isInside("/a", "/"))
    #expect(!OutputDestination.isInside("/", "/"))
  }

  @Test func devicesAreRefusedWithoutBeingTouched() throws {
    for device in ["/dev/null", "/dev/full", "/dev/zero"] {
      #expect(throws: OutputError.specialFile(path: device, kind: "character device")) {
        try OutputDestination(path: device, kind: .file, replace: true, inputs: [])
      }
      #expect(throws: OutputError.specialFile(path: device, kind: "character device")) {
        try OutputDestination.refuseSpecialFile(at: device)
      }
    }
  }

  /// The check and the rename are apart; what appears in between is not replaced without
  /// `replace`, and is replaced as any existing entry with it.
  @Test func anOutputThatAppearsMeanwhileIsNotReplaced() throws {
    let folder = try scratch("race")
    defer { try? FileManager.default.removeItem(atPath: folder) }
    let path = folder + "/out"
    let output = try OutputDestination(path: path, kind: .folder, replace: false, inputs: [])
    let staged = folder + "/.out.tmp-1"
    try FileManager.default.createDirectory(atPath: staged, withIntermediateDirectories: false)
    try write("new", to: staged + "/config.json")
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: false)
    try write("theirs", to: path + "/config.json")
    #expect(throws: OutputError.exists(path: path)) { try output.install(from: staged) }
    #expect(try String(contentsOfFile: path + "/config.json", encoding: .utf8) == "theirs")
    // An empty folder too: a plain rename would replace it.
    try FileManager.default.removeItem(atPath: path + "/config.json")
    #expect(throws: OutputError.exists(path: path)) { try output.install(from: staged) }

    let forced = try OutputDestination(path: path, kind: .folder, replace: true, inputs: [])
    try write("theirs", to: path + "/config.json")
    try forced.install(from: staged)
    #expect(try String(contentsOfFile: path + "/config.json", encoding: .utf8) == "new")
    #expect(!FileManager.default.fileExists(atPath: staged))
  }

  @Test func aSymlinkAtTheOutputIsReplacedNotFollowed() throws {
    let folder = try scratch("link")
    defer { try? FileManager.default.removeItem(atPath: folder) }
    let target = folder + "/target.gguf"
    try write("keep", to: target)
    let link = folder + "/link.gguf"
    try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: target)
    let output = try OutputDestination(path: link, kind: .file, replace: true, inputs: [])
    let file = try AtomicFile(output: output)
    try Array("new".utf8).withUnsafeBytes { try file.write($0) }
    try file.commit()
    #expect(try String(contentsOfFile: target, encoding: .utf8) == "keep")
    #expect(try String(contentsOfFile: link, encoding: .utf8) == "new")
    var info = stat()
    #expect(lstat(link, &info) == 0 && (info.st_mode & S_IFMT) == S_IFREG)
  }

  @Test func inputsAreFoundThroughLinksAndDotDot() throws {
    let folder = try scratch("inputs")
    defer { try? FileManager.default.removeItem(atPath: folder) }
    let model = folder + "/model"
    try FileManager.default.createDirectory(atPath: model, withIntermediateDirectories: false)
    try write("{}", to: model + "/config.json")
    try FileManager.default.createSymbolicLink(atPath: folder + "/alias", withDestinationPath: model)
    let cases: [(String, String)] = [
      (folder + "/alias/.", "is"), (folder + "/model/../model", "is"), (folder, "holds"),
      (folder + "/alias/out", "lies inside"),
    ]
    for (path, relation) in cases {
      #expect(throws: OutputError.overlapsInput(path: path, input: folder + "/alias", relation: relation)) {
        try OutputDestination(path: path, kind: .folder, replace: true, inputs: [folder + "/alias"])
      }
    }
    // The link itself is not the input: replacing it leaves the model where it is.
    #expect(throws: Never.self) {
      try OutputDestination(path: folder + "/alias", kind: .folder, replace: true, inputs: [model])
    }
  }

  @Test func aStaleTemporaryOfADeadRunIsRemoved() throws {
    let folder = try scratch("stale")
    defer { try? FileManager.default.removeItem(atPath: folder) }
    // PID 2^22 + 1 is above Linux's pid_max limit, so no such process exists.
    let stale = folder + "/.plot.svg.tmp-4194305-9f2a"
    try write("partial", to: stale)
    let output = try OutputDestination(path: folder + "/plot.svg", kind: .file, replace: true, inputs: [])
    output.removeStaleTemporaries()
    #expect(!FileManager.default.fileExists(atPath: stale))
  }
}
