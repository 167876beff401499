import Foundation
import Testing

/// The static diff streams both checkpoints: each chunk's mapped pages are dropped once it is
/// compared, so peak resident memory stays below the size of one checkpoint, not of both.
@Suite struct QDiffResourceTests {
  /// An F16 safetensors file of `count` `[256, 1024]` tensors (512 KiB each) that all hold
  /// `values`, written a tensor at a time so this process stays small.
  static func writeModel(to url: URL, count: Int, values: [UInt16]) throws {
    let tensorBytes = values.count * 2
    var entries: [String] = []
    for index in 0..<count {
      entries.append(
        #""model.layers.\#(index).mlp.down_proj.weight":{"dtype":"F16","shape":[256,1024],"data_offsets":[\#(index * tensorBytes),\#((index + 1) * tensorBytes)]}"#
      )
    }
    var header = Array(("{" + entries.joined(separator: ",") + "}").utf8)
    while header.count % 8 != 0 { header.append(0x20) }
    try Data().write(to: url)
    let handle = try FileHandle(forWritingTo: url)
    defer { try? handle.close() }
    try handle.write(
      contentsOf: withUnsafeBytes(of: UInt64(header.count).littleEndian) { Data($0) } + Data(header)
    )
    let tensor = values.withUnsafeBytes { Data($0) }
    for _ in 0..<count { try handle.write(contentsOf: tensor) }
  }

  /// The child's own high-water mark (`VmHWM` of /proc/PID/status), polled until it exits:
  /// unlike `ru_maxrss`, it does not inherit the spawning test process's peak.
  static func peakResidentKilobytes(_ tool: String, _ arguments: [String]) throws -> (
    status: Int32, kilobytes: Int
  ) {
    let process = Process()
    process.executableURL = productsDirectory.appendingPathComponent(tool)
    process.environment = toolEnvironment
    process.arguments = arguments
    process.standardOutput = FileHandle.nullDevice
    process.standardError = FileHandle.nullDevice
    try process.run()
    var peak = 0
    while process.isRunning {
      if let status = try? String(
        contentsOfFile: "/proc/\(process.processIdentifier)/status", encoding: .utf8),
        let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmHWM:") }),
        let value = line.split(separator: " ").dropFirst().first.flatMap({ Int($0) })
      {
        peak = max(peak, value)
      }
      usleep(5_000)
    }
    process.waitUntilExit()
    return (process.terminationStatus, peak)
  }

  @Test func staticDiffKeepsResidentMemoryBelowOneCheckpoint() throws {
    let work = FileManager.default.temporaryDirectory.appendingPathComponent(
      "qdiff-rss-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: work, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: work) }
    let old = work.appendingPathComponent("old.safetensors")
    let new = work.appendingPathComponent("new.safetensors")
    // 192 tensors of 512 KiB: 96 MiB per file. Half-precision bit patterns of small numbers.
    func pattern(_ step: Int) -> [UInt16] {
      (0..<(256 * 1024)).map { (index: Int) -> UInt16 in UInt16(0x2000 + (index * step) % 0x1000) }
    }
    let oldValues = pattern(7919)
    let newValues = pattern(104_729)
    try Self.writeModel(to: old, count: 192, values: oldValues)
    try Self.writeModel(to: new, count: 192, values: newValues)
    let run = try Self.peakResidentKilobytes("qdiff", [old.path, new.path, "--format", "json"])
    #expect(run.status == 1)
    #expect(run.kilobytes > 0)
    // Both files mapped whole would be 192 MiB; one is 96 MiB.
    #expect(run.kilobytes < 80 * 1024, "peak RSS \(run.kilobytes / 1024) MB")
  }
}
