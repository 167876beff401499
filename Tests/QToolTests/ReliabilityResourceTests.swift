import Foundation
import Testing

/// qinspect on small hostile files: it must fail cleanly and its peak resident memory stay
/// far below what the headers claim (measured with `wait4` on the child alone).
@Suite struct ReliabilityResourceTests {
  /// A bound well above the tool's own footprint (about 40 MB) and far below any claim.
  static let limitKilobytes = 200 * 1024

  static func le<T: FixedWidthInteger>(_ value: T) -> [UInt8] {
    withUnsafeBytes(of: value.littleEndian) { [UInt8]($0) }
  }

  static func safetensors(_ header: String, data: [UInt8] = []) -> [UInt8] {
    var json = Array(header.utf8)
    while json.count % 8 != 0 { json.append(0x20) }
    return le(UInt64(json.count)) + json + data
  }

  static let hostileFiles: [(name: String, bytes: [UInt8])] = [
    (
      "shape_2_40.safetensors",
      safetensors(#"{"w":{"dtype":"F32","shape":[1048576,1048576],"data_offsets":[0,4398046511104]}}"#, data: [0, 0, 0, 0])
    ),
    ("header_2_40.safetensors", le(UInt64(1) << 40) + Array(repeating: UInt8(ascii: " "), count: 92)),
    ("tensors_2_60.gguf", Array("GGUF".utf8) + le(UInt32(3)) + le(UInt64(1) << 60) + le(UInt64(0))),
    (
      "array_2_60.gguf",
      Array("GGUF".utf8) + le(UInt32(3)) + le(UInt64(0)) + le(UInt64(1)) + le(UInt64(1)) + Array("a".utf8)
        + le(UInt32(9)) + le(UInt32(0)) + le(UInt64(1) << 60)
    ),
  ]

  @Test(arguments: hostileFiles.map(\.name) + ["hostile_huge_dataset.h5"])
  func qinspectStatsStaysSmall(name: String) throws {
    let folder = try makeScratchFolder("rss")
    defer { try? FileManager.default.removeItem(at: folder) }
    var path = folder.appendingPathComponent(name).path
    if let file = Self.hostileFiles.first(where: { $0.name == name }) {
      try Data(file.bytes).write(to: URL(fileURLWithPath: path))
    } else {
      path = fixturesDirectory.appendingPathComponent("malformed-found/\(name)").path
    }
    let run = try peakResidentKilobytes("qinspect", ["--stats", path])
    #expect(run.status == 1, "\(name): exit status \(run.status)")
    #expect(run.kilobytes < Self.limitKilobytes, "\(name): peak RSS \(run.kilobytes) KB")
    print("qinspect --stats \(name) (\(try Data(contentsOf: URL(fileURLWithPath: path)).count) bytes): exit \(run.status), peak RSS \(run.kilobytes / 1024) MB")
  }
}
