import Foundation
import Testing

#if canImport(Glibc)
  import Glibc
#endif

/// Fault injection on qconvert: killed at random points, interrupted, and out of disk space.
///
/// CI runs a short form; `QCONVERT_KILL_RUNS=50 QCONVERT_KILL_MEGABYTES=20` gives the long one.
@Suite(.serialized) struct ReliabilityTests {
  static let environment = ProcessInfo.processInfo.environment
  static let killRuns = Int(environment["QCONVERT_KILL_RUNS"] ?? "") ?? 10
  static let killMegabytes = Int(environment["QCONVERT_KILL_MEGABYTES"] ?? "") ?? 4

  @Test func sigkillLeavesThePreviousOutputWholeAndTheNextRunCleansUp() throws {
    let folder = try makeScratchFolder("kill")
    defer { try? FileManager.default.removeItem(at: folder) }
    let input = folder.appendingPathComponent("input.safetensors")
    try writeRandomModel(to: input, megabytes: Self.killMegabytes, seed: 1)
    let output = folder.appendingPathComponent("out")
    let arguments = [input.path, "--output", output.path, "--quiet", "--force"]

    let started = Date()
    let first = try runTool("qconvert", arguments)
    let duration = Date().timeIntervalSince(started)
    try #require(first.status == 0, "\(first.stderr)")
    let reference = try folderContents(output)
    try #require(reference["model.safetensors"] != nil)

    var generator = SeededGenerator(seed: 20_240_601)
    for run in 0..<Self.killRuns {
      let delay = Double.random(in: 0...(duration * 1.1), using: &generator)
      let process = try startTool("qconvert", arguments)
      usleep(UInt32(delay * 1_000_000))
      kill(process.processIdentifier, SIGKILL)
      process.waitUntilExit()
      // The old output is swapped for the new one in one rename, so there is no moment
      // without an output to be killed in.
      #expect(try folderContents(output) == reference, "run \(run) killed after \(delay) s")
    }
    let next = try runTool("qconvert", arguments)
    #expect(next.status == 0, "\(next.stderr)")
    #expect(try temporaries(in: folder) == [])
    #expect(try folderContents(output) == reference)
    print(
      "qconvert SIGKILL: \(Self.killRuns) runs over a \(Self.killMegabytes) MB model (\(String(format: "%.2f", duration)) s each),",
      "output intact \(Self.killRuns), temporaries left after the next run: 0")
  }

  @Test func stagedOutputOfADeadRunIsRestoredOrRemoved() throws {
    let folder = try makeScratchFolder("stale")
    defer { try? FileManager.default.removeItem(at: folder) }
    let output = folder.appendingPathComponent("out")
    let tiny = fixturesDirectory.appendingPathComponent("tiny-llama").path
    let first = try runTool("qconvert", [tiny, "--output", output.path, "--quiet"])
    try #require(first.status == 0, "\(first.stderr)")
    let reference = try folderContents(output)
    // What a run killed inside its final two renames leaves: the old output aside, a staged
    // folder, and nothing at the output path. PID 2^22 + 1 is above Linux's pid_max limit.
    let dead = 4_194_305
    let manager = FileManager.default
    try manager.moveItem(at: output, to: folder.appendingPathComponent(".out.tmp-\(dead).old"))
    try manager.createDirectory(at: folder.appendingPathComponent(".out.tmp-\(dead)"), withIntermediateDirectories: false)
    try Data("partial".utf8).write(to: folder.appendingPathComponent(".out.tmp-\(dead)/model.safetensors"))

    let next = try runTool("qconvert", [tiny, "--output", output.path, "--quiet"])
    #expect(next.status != 0, "the restored old output is still there, so --force is needed")
    #expect(next.stderr.contains("exists"))
    #expect(try temporaries(in: folder) == [])
    #expect(try folderContents(output) == reference)
  }

  /// Ctrl-C, `kill` and a closed terminal: each removes the staged folder and exits at once
  /// with 128 + the signal number, as a shell reports a death by signal.
  @Test(arguments: [SIGINT, SIGTERM, SIGHUP])
  func signalRemovesTheStagedFolderAtOnce(signal: Int32) throws {
    let folder = try makeScratchFolder("signal-\(signal)")
    defer { try? FileManager.default.removeItem(at: folder) }
    let input = folder.appendingPathComponent("input.safetensors")
    try writeRandomModel(to: input, megabytes: 8, seed: 2)
    let output = folder.appendingPathComponent("out")
    let process = try startTool("qconvert", [input.path, "--output", output.path, "--quiet"])
    var waited = 0
    while try temporaries(in: folder).isEmpty, process.isRunning, waited < 2_000 {
      usleep(5_000)
      waited += 1
    }
    try #require(process.isRunning, "the conversion finished before it could be interrupted")
    usleep(100_000)
    kill(process.processIdentifier, signal)
    let sent = Date()
    process.waitUntilExit()
    let took = Date().timeIntervalSince(sent)
    #expect(process.terminationReason == .exit)
    #expect(process.terminationStatus == 128 + signal)
    #expect(took < 2, "exited \(took) s after signal \(signal)")
    #expect(try temporaries(in: folder) == [])
    #expect(!FileManager.default.fileExists(atPath: output.path))
  }

  /// A 1 MiB tmpfs as the output's file system. Mounting needs root (CAP_SYS_ADMIN); without
  /// it the test only notes that it did not run.
  @Test func fullDiskFailsCleanlyAndKeepsThePreviousOutput() throws {
    let folder = try makeScratchFolder("full")
    defer { try? FileManager.default.removeItem(at: folder) }
    let disk = folder.appendingPathComponent("disk")
    try FileManager.default.createDirectory(at: disk, withIntermediateDirectories: false)
    let mount = try runCommand("/bin/mount", ["-t", "tmpfs", "-o", "size=1m", "tmpfs", disk.path])
    guard mount == 0 else {
      print("fullDiskFailsCleanlyAndKeepsThePreviousOutput: cannot mount a tmpfs here (not root?); not run")
      return
    }
    defer { _ = try? runCommand("/bin/umount", [disk.path]) }
    let input = folder.appendingPathComponent("input.safetensors")
    try writeRandomModel(to: input, megabytes: 8, seed: 3)
    let output = disk.appendingPathComponent("out")
    let tiny = fixturesDirectory.appendingPathComponent("tiny-llama").path
    let first = try runTool("qconvert", [tiny, "--output", output.path, "--quiet"])
    try #require(first.status == 0, "\(first.stderr)")
    let reference = try folderContents(output)

    let full = try runTool("qconvert", [input.path, "--output", output.path, "--quiet", "--force"])
    #expect(full.status == 1)
    #expect(full.stderr.contains("space"), "\(full.stderr)")
    #expect(try temporaries(in: disk) == [])
    #expect(try folderContents(output) == reference)
  }
}

/// Runs a system command quietly and returns its exit status.
func runCommand(_ path: String, _ arguments: [String]) throws -> Int32 {
  let process = Process()
  process.executableURL = URL(fileURLWithPath: path)
  process.arguments = arguments
  process.standardOutput = FileHandle.nullDevice
  process.standardError = FileHandle.nullDevice
  try process.run()
  process.waitUntilExit()
  return process.terminationStatus
}
