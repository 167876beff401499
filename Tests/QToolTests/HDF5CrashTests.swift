import Foundation
import Testing

/// `qinspect` on a file whose variable-length attribute points into a corrupt global heap
/// segfaulted inside libhdf5 (exit status 139 from a signal); it must now finish with a report
/// or a clean error.
@Suite struct HDF5CrashTests {
  @Test func qinspectSurvivesCorruptVariableLengthAttribute() throws {
    let path = fixturesDirectory.appendingPathComponent("malformed-found/libhdf5_vlen_attribute_heap.h5").path
    let run = try runTool("qinspect", [path])
    #expect(run.status == 0 || run.status == 1, "status \(run.status), stderr: \(run.stderr)")
    if run.status == 1 { #expect(run.stderr.contains("libhdf5_vlen_attribute_heap.h5")) }
  }

  /// An attribute message libhdf5 reads past (heap-buffer-overflow in `H5O__msg_iterate_real`):
  /// the child that reads the file's structure first absorbs it, and `qinspect` ends with one
  /// line naming the file and a non-zero status instead of crashing.
  @Test func qinspectReportsAttributeOverreadOnOneLine() throws {
    let path = fixturesDirectory.appendingPathComponent("malformed-found/libhdf5_attribute_decode.h5").path
    let run = try runTool("qinspect", [path])
    #expect(run.status == 1, "status \(run.status), stderr: \(run.stderr)")
    let lines = run.stderr.split(separator: "\n")
    #expect(lines.count == 1, "stderr: \(run.stderr)")
    #expect(run.stderr.hasPrefix("qinspect: \(path): "))
  }
}
