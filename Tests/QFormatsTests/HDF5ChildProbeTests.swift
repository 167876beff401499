#if canImport(Glibc)
  import Glibc
#endif
import Foundation
import Testing

@testable import QFormats

/// The child process that reads an HDF5 file's structure before this process does: how its end
/// turns into an error, and that opening a valid file still works through it.
@Suite struct HDF5ChildProbeTests {
  /// A child that outlives the time limit is killed and reported as hung, naming the file.
  @Test func childThatOverrunsTheTimeLimitIsReported() throws {
    let child = try HDF5ChildProbe.start(path: "slow.h5") {
      sleep(30)
      return HDF5ChildProbe.passedStatus
    }
    let began = ContinuousClock.now
    let outcome = try HDF5ChildProbe.wait(for: child, path: "slow.h5", timeout: .milliseconds(200))
    #expect(outcome == .timedOut)
    #expect(ContinuousClock.now - began < .seconds(5))
    let error = HDF5ChildProbe.error(for: outcome, path: "slow.h5", timeout: .milliseconds(200))
    #expect(
      error?.description
        == "slow.h5: libhdf5 did not finish reading the file's structure within 0.2 s; the file is likely malformed"
    )
  }

  /// A child killed by a signal stands for libhdf5 crashing on the file.
  @Test func childKilledByASignalIsReportedAsACrash() throws {
    let child = try HDF5ChildProbe.start(path: "bad.h5") {
      raise(SIGSEGV)
      return HDF5ChildProbe.passedStatus
    }
    let outcome = try HDF5ChildProbe.wait(for: child, path: "bad.h5", timeout: HDF5ChildProbe.timeout)
    #expect(outcome == .signalled(SIGSEGV))
    let error = HDF5ChildProbe.error(for: outcome, path: "bad.h5", timeout: HDF5ChildProbe.timeout)
    #expect(
      error?.description
        == "bad.h5: libhdf5 crashed (signal 11) while reading the file's structure; the file is malformed")
  }

  /// A clean error in the child leaves the parent to open the file and report that error itself.
  @Test func childThatFailsCleanlyLetsTheParentReport() throws {
    let child = try HDF5ChildProbe.start(path: "plain.h5") { HDF5ChildProbe.cleanErrorStatus }
    let outcome = try HDF5ChildProbe.wait(for: child, path: "plain.h5", timeout: HDF5ChildProbe.timeout)
    #expect(outcome == .failedCleanly)
    #expect(HDF5ChildProbe.error(for: outcome, path: "plain.h5", timeout: HDF5ChildProbe.timeout) == nil)
  }

  /// Any other exit status (a sanitizer's, for one) is a crash too.
  @Test func otherExitStatusIsReportedAsACrash() throws {
    let child = try HDF5ChildProbe.start(path: "odd.h5") { 1 }
    let outcome = try HDF5ChildProbe.wait(for: child, path: "odd.h5", timeout: HDF5ChildProbe.timeout)
    #expect(outcome == .exited(1))
    #expect(
      HDF5ChildProbe.error(for: outcome, path: "odd.h5", timeout: HDF5ChildProbe.timeout)
        == .libraryCrashed(path: "odd.h5", termination: "exit status 1"))
  }

  /// The child runs the real walk, and a valid file passes it.
  @Test func openingAValidFileGoesThroughTheChild() throws {
    let path = HDF5Fixtures.path("keras2.h5")
    let file = try HDF5File(path: path)
    #expect(!file.tensors.isEmpty)
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

  /// A child forked while a file is being written keeps a copy of the writer's descriptor; the
  /// finished file must still open at once (no libhdf5 file lock outlives the writer's close).
  @Test func childForkedDuringAWriteLeavesTheFileOpenable() throws {
    let folder = FileManager.default.temporaryDirectory.appendingPathComponent("hdf5-probe-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: folder) }
    let path = folder.appendingPathComponent("out.h5").path
    let writer = try HDF5Writer(path: path, metadata: [:])
    let values: [Float] = [1, 2, 3]
    try values.withUnsafeBytes { try writer.write(name: "w", dtype: .f32, shape: [3], bytes: $0) }
    let child = try HDF5ChildProbe.start(path: path) {
      sleep(30)
      return HDF5ChildProbe.passedStatus
    }
    defer { _ = try? HDF5ChildProbe.wait(for: child, path: path, timeout: .milliseconds(1)) }
    try writer.finish()
    let file = try HDF5File(path: path)
    #expect(file.tensors.map(\.name) == ["w"])
  }
}
