#if canImport(Glibc)
  import Glibc
#endif
import Foundation
import Testing

@testable import QFormats

/// Requests the worker process running a test's walk has served, counting the current one; each
/// worker starts from the parent's zero, and only workers run the walks that count.
nonisolated(unsafe) private var requestsSeenByThisWorker = 0

/// The worker process that reads an HDF5 file's structure before this process does: how its end
/// turns into an error, how it is reused and replaced, and that opening a valid file still works
/// through it.
@Suite struct HDF5ChildProbeTests {
  /// A walk for paths whose last component names what it should do: hang, crash, crash only in a
  /// reused worker, exit, fail cleanly; any other path is read as an HDF5 file. (The worker gets
  /// relative paths made absolute.)
  static let scriptedWalk: @Sendable (String) throws(HDF5Error) -> Void = { path throws(HDF5Error) in
    requestsSeenByThisWorker += 1
    switch path.split(separator: "/").last.map(String.init) ?? path {
    case "hang": sleep(30)
    case "crash": raise(SIGSEGV)
    case "crash-when-reused" where requestsSeenByThisWorker > 1: raise(SIGSEGV)
    case "crash-when-reused": return
    case "exit": _exit(1)
    case "fail": throw HDF5Error.notHDF5(path: path)
    case "pass": return
    default: _ = try HDF5File.readStructure(path: path)
    }
  }

  /// A worker that outlives the time limit is killed and reported as hung, naming the file.
  @Test func workerThatOverrunsTheTimeLimitIsReported() throws {
    let probe = HDF5ChildProbe(walk: Self.scriptedWalk)
    let began = ContinuousClock.now
    let outcome = try probe.outcome(path: "hang", timeout: .milliseconds(200))
    #expect(outcome == .timedOut)
    #expect(ContinuousClock.now - began < .seconds(5))
    #expect(probe.workerID == nil)
    let error = HDF5ChildProbe.error(for: outcome, path: "slow.h5", timeout: .milliseconds(200))
    #expect(
      error?.description
        == "slow.h5: libhdf5 did not finish reading the file's structure within 0.2 s; the file is likely malformed"
    )
  }

  /// A worker killed by a signal stands for libhdf5 crashing on the file.
  @Test func workerKilledByASignalIsReportedAsACrash() throws {
    let probe = HDF5ChildProbe(walk: Self.scriptedWalk)
    let outcome = try probe.outcome(path: "crash")
    #expect(outcome == .signalled(SIGSEGV))
    let error = HDF5ChildProbe.error(for: outcome, path: "bad.h5", timeout: HDF5ChildProbe.timeout)
    #expect(
      error?.description
        == "bad.h5: libhdf5 crashed (signal 11) while reading the file's structure; the file is malformed")
    #expect(throws: HDF5Error.libraryCrashed(path: "crash", termination: "signal 11")) {
      try probe.check(path: "crash")
    }
  }

  /// A clean error in the worker leaves the parent to open the file and report that error itself.
  @Test func workerThatFailsCleanlyLetsTheParentReport() throws {
    let probe = HDF5ChildProbe(walk: Self.scriptedWalk)
    let outcome = try probe.outcome(path: "fail")
    #expect(outcome == .failedCleanly)
    #expect(HDF5ChildProbe.error(for: outcome, path: "fail", timeout: HDF5ChildProbe.timeout) == nil)
    #expect(probe.workerID != nil)
  }

  /// A worker that exits in the middle of a request (a sanitizer's abort, for one) has crashed.
  @Test func exitDuringARequestIsReportedAsACrash() throws {
    let probe = HDF5ChildProbe(walk: Self.scriptedWalk)
    let outcome = try probe.outcome(path: "exit")
    #expect(outcome == .exited(1))
    #expect(
      HDF5ChildProbe.error(for: outcome, path: "odd.h5", timeout: HDF5ChildProbe.timeout)
        == .libraryCrashed(path: "odd.h5", termination: "exit status 1"))
  }

  /// One worker reads valid files, files with clean errors and files it crashes on, interleaved,
  /// and gives each the outcome a worker forked for that file alone gives; it is reused between
  /// answers and replaced only after a crash.
  @Test func reusedWorkerGivesTheOutcomesOfFreshOnes() throws {
    let files = [
      HDF5Fixtures.path("keras2.h5"), HDF5Fixtures.path("truncated.h5"), "crash",
      HDF5Fixtures.path("not_hdf5.h5"), HDF5Fixtures.path("keras3.weights.h5"), "crash",
      HDF5Fixtures.path("no_such_file.h5"), HDF5Fixtures.path("basic.h5"),
      HDF5FuzzFoundTests.path("libhdf5_attribute_table.h5"), HDF5Fixtures.path("collision.h5"),
      HDF5FuzzFoundTests.path("libhdf5_huge_cache_entry.h5"), "crash", HDF5Fixtures.path("track_order.h5"),
      HDF5Fixtures.path("keras2.h5"),
    ]
    let fresh = try files.map { file in try HDF5ChildProbe(walk: Self.scriptedWalk).outcome(path: file) }
    #expect(fresh.contains(.passed) && fresh.contains(.failedCleanly) && fresh.contains(.signalled(SIGSEGV)))

    let probe = HDF5ChildProbe(walk: Self.scriptedWalk)
    var reused: [HDF5ChildProbe.Outcome] = []
    var workers: [pid_t?] = []
    for file in files {
      reused.append(try probe.outcome(path: file))
      workers.append(probe.workerID)
    }
    #expect(reused == fresh)
    for index in files.indices.dropFirst() where files[index] != "crash" && files[index - 1] != "crash" {
      #expect(workers[index] != nil && workers[index] == workers[index - 1], "\(files[index])")
    }
    #expect(workers.enumerated().allSatisfy { files[$0.offset] != "crash" || $0.element == nil })
  }

  /// A reused worker that crashes is not believed: the file goes to a fresh worker, whose answer stands.
  @Test func crashOnAReusedWorkerIsRetriedInAFreshOne() throws {
    let probe = HDF5ChildProbe(walk: Self.scriptedWalk)
    #expect(try probe.outcome(path: "pass") == .passed)
    let first = try #require(probe.workerID)
    #expect(try probe.outcome(path: "crash-when-reused") == .passed)
    let second = try #require(probe.workerID)
    #expect(second != first)
    // A crash in a fresh worker is final.
    #expect(try probe.outcome(path: "crash") == .signalled(SIGSEGV))
    #expect(try probe.outcome(path: "pass") == .passed)
  }

  /// A hang is reported once a fresh worker has hung too, and the next file gets a new worker.
  @Test func hangIsReportedAsTimedOutAndTheNextFileWorks() throws {
    let probe = HDF5ChildProbe(walk: Self.scriptedWalk)
    #expect(try probe.outcome(path: "pass") == .passed)
    let began = ContinuousClock.now
    #expect(try probe.outcome(path: "hang", timeout: .milliseconds(200)) == .timedOut)
    let took = ContinuousClock.now - began
    #expect(took >= .milliseconds(400) && took < .seconds(5))
    #expect(probe.workerID == nil)
    #expect(try probe.outcome(path: HDF5Fixtures.path("keras2.h5"), timeout: .milliseconds(2000)) == .passed)
    #expect(probe.workerID != nil)
  }

  /// Closing the worker's socket makes it exit by itself, and it is collected: no zombie is left.
  @Test func workerExitsWhenItsSocketCloses() throws {
    let probe = HDF5ChildProbe(walk: Self.scriptedWalk)
    #expect(try probe.outcome(path: "pass") == .passed)
    let worker = try #require(probe.workerID)
    #expect(kill(worker, 0) == 0)
    #expect(probe.shutDown() == .exited(0))
    #expect(probe.workerID == nil)
    #expect(kill(worker, 0) == -1 && errno == ESRCH)
    var status: Int32 = 0
    #expect(waitpid(worker, &status, WNOHANG) == -1 && errno == ECHILD)
  }

  /// The worker keeps no descriptor of the parent's: the write end of a pipe the parent closes
  /// reports end of file to its reader though a worker was forked while it was open.
  @Test func workerClosesTheDescriptorsItInherits() throws {
    var ends: [Int32] = [-1, -1]
    #expect(pipe(&ends) == 0)
    defer { close(ends[0]) }
    let probe = HDF5ChildProbe(walk: Self.scriptedWalk)
    #expect(try probe.outcome(path: "pass") == .passed)
    close(ends[1])
    var entry = pollfd(fd: ends[0], events: Int16(POLLIN), revents: 0)
    let ready = poll(&entry, 1, 5000)
    #expect(ready == 1)
    if ready == 1 {
      var byte: UInt8 = 0
      #expect(read(ends[0], &byte, 1) == 0)
    }
    #expect(probe.workerID != nil)
  }

  /// The worker runs the real walk, and a valid file passes it.
  @Test func openingAValidFileGoesThroughTheWorker() throws {
    let path = HDF5Fixtures.path("keras2.h5")
    let file = try HDF5File(path: path)
    #expect(!file.tensors.isEmpty)
    #expect(try HDF5ChildProbe.shared.outcome(path: path) == .passed)
  }

  /// A worker forked while this process holds a file open reads that file as a fresh process
  /// would, not through its inherited copy of this process's open file: here the file has been
  /// rewritten in place with a truncated one since this process opened it.
  @Test func workerReadsAFileTheParentHadOpenAtTheFork() throws {
    let folder = FileManager.default.temporaryDirectory.appendingPathComponent("hdf5-probe-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: folder) }
    let path = folder.appendingPathComponent("rewritten.h5").path
    try FileManager.default.copyItem(atPath: HDF5Fixtures.path("keras2.h5"), toPath: path)
    let file = try HDF5File(path: path)
    let truncated = try Data(contentsOf: URL(fileURLWithPath: HDF5Fixtures.path("truncated.h5")))
    let handle = try #require(FileHandle(forWritingAtPath: path))
    try handle.truncate(atOffset: 0)
    try handle.write(contentsOf: truncated)
    try handle.close()
    let probe = HDF5ChildProbe(walk: Self.scriptedWalk)
    #expect(try probe.outcome(path: path) == .failedCleanly)
    #expect(!file.tensors.isEmpty)
  }

  /// A file this process reaches through one of its descriptors, opened after the worker was
  /// forked, is read by the worker too (`Checkpoint` opens a decompressed `.h5.zst` this way).
  @Test func workerReadsAFileThroughADescriptorOfThisProcess() throws {
    let probe = HDF5ChildProbe(walk: Self.scriptedWalk)
    #expect(try probe.outcome(path: "pass") == .passed)
    let descriptor = open(HDF5Fixtures.path("keras2.h5"), O_RDONLY)
    #expect(descriptor >= 0)
    defer { close(descriptor) }
    #expect(try probe.outcome(path: "/proc/self/fd/\(descriptor)") == .passed)
    #expect(try probe.outcome(path: "/dev/fd/\(descriptor)") == .passed)
    #expect(HDF5ChildProbe.workerPath(for: "a.h5") == FileManager.default.currentDirectoryPath + "/a.h5")
  }

  /// A file libhdf5 reports as broken without crashing gets the in-process error, not a crash report.
  @Test func cleanLibraryErrorKeepsItsDetail() throws {
    let path = HDF5Fixtures.path("truncated.h5")
    #expect {
      _ = try HDF5File(path: path)
    } throws: { error in
      guard case .truncated(let errorPath, _) = error as? HDF5Error else { return false }
      return errorPath == path
    }
  }

  /// A worker forked while a file is being written must not keep that file locked: the finished
  /// file opens at once (no libhdf5 file lock outlives the writer's close).
  @Test func workerForkedDuringAWriteLeavesTheFileOpenable() throws {
    let folder = FileManager.default.temporaryDirectory.appendingPathComponent("hdf5-probe-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: folder) }
    let path = folder.appendingPathComponent("out.h5").path
    let writer = try HDF5Writer(path: path, metadata: [:])
    let values: [Float] = [1, 2, 3]
    try values.withUnsafeBytes { try writer.write(name: "w", dtype: .f32, shape: [3], bytes: $0) }
    let probe = HDF5ChildProbe(walk: Self.scriptedWalk)
    #expect(try probe.outcome(path: "pass") == .passed)
    try writer.finish()
    let file = try HDF5File(path: path)
    #expect(file.tensors.map(\.name) == ["w"])
    #expect(try probe.outcome(path: path) == .passed)
  }
}
