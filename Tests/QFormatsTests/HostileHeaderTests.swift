import Foundation
import QFormats
import Testing

/// Small files whose headers claim huge sizes or counts; each must fail with an error naming
/// the defect, before anything sized from the claim is allocated.
///
/// `Tests/QToolTests/ReliabilityResourceTests.swift` runs qinspect on the same kind of files
/// and bounds its peak memory.
@Suite struct HostileHeaderTests {
  /// A safetensors file of `header` (padded to 8 bytes) and `data`.
  static func safetensors(_ header: String, data: [UInt8] = []) -> [UInt8] {
    var json = Array(header.utf8)
    while json.count % 8 != 0 { json.append(0x20) }
    return withUnsafeBytes(of: UInt64(json.count).littleEndian) { [UInt8]($0) } + json + data
  }

  /// Little-endian bytes of `value`.
  static func le<T: FixedWidthInteger>(_ value: T) -> [UInt8] {
    withUnsafeBytes(of: value.littleEndian) { [UInt8]($0) }
  }

  /// A GGUF v3 header with these counts, then `rest`.
  static func gguf(tensors: UInt64, keyValues: UInt64, rest: [UInt8] = []) -> [UInt8] {
    Array("GGUF".utf8) + le(UInt32(3)) + le(tensors) + le(keyValues) + rest
  }

  static let malformedFound = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    .appendingPathComponent("Fixtures/malformed-found")

  @Test func safetensorsClaimingTwoToTheFortyElementsIsRejected() throws {
    let bytes = Self.safetensors(
      #"{"w":{"dtype":"F32","shape":[1048576,1048576],"data_offsets":[0,4398046511104]}}"#, data: [0, 0, 0, 0])
    #expect(bytes.count < 128)
    #expect(throws: SafetensorsError.self) { try SafetensorsFile(bytes: bytes) }
  }

  @Test func safetensorsClaimingATerabyteHeaderIsRejected() throws {
    let bytes = Self.le(UInt64(1) << 40) + Array(repeating: UInt8(ascii: " "), count: 92)
    let error = try #require(throws: SafetensorsError.self) { try SafetensorsFile(bytes: bytes) }
    #expect(String(describing: error).contains("limit"))
  }

  @Test func safetensorsWithAHundredThousandDimensionsIsRejected() throws {
    let shape = Array(repeating: "2", count: 100_000).joined(separator: ",")
    let bytes = Self.safetensors(#"{"w":{"dtype":"U8","shape":[\#(shape)],"data_offsets":[0,1]}}"#, data: [0])
    #expect(throws: SafetensorsError.self) { try SafetensorsFile(bytes: bytes) }
  }

  @Test(arguments: [
    ("2^60 tensors", gguf(tensors: 1 << 60, keyValues: 0)),
    ("2^60 metadata entries", gguf(tensors: 0, keyValues: 1 << 60)),
    (
      "an array of 2^60 bytes",
      gguf(tensors: 0, keyValues: 1, rest: le(UInt64(1)) + Array("a".utf8) + le(UInt32(9)) + le(UInt32(0)) + le(UInt64(1) << 60))
    ),
    ("a key of 2^62 bytes", gguf(tensors: 0, keyValues: 1, rest: le(UInt64(1) << 62))),
  ])
  func ggufClaimingHugeCountsIsRejected(label: String, bytes: [UInt8]) throws {
    let folder = FileManager.default.temporaryDirectory.appendingPathComponent("hostile-\(getpid())-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: folder) }
    let path = folder.appendingPathComponent("hostile.gguf").path
    try Data(bytes).write(to: URL(fileURLWithPath: path))
    #expect(bytes.count < 100, "\(label)")
    #expect(throws: GGUFError.self, "\(label)") { try GGUFFile(path: path) }
  }

  /// Found by running `qinspect --stats` on it: the read allocated the claimed 4 TiB and trapped.
  @Test func hdf5DatasetClaimingFourTebibytesIsRefusedOnRead() throws {
    let path = Self.malformedFound.appendingPathComponent("hostile_huge_dataset.h5").path
    let file = try HDF5File(path: path)
    let info = try #require(file.info(named: "dense.kernel"))
    #expect(info.elementCount == 1 << 40)
    let error = try #require(throws: HDF5Error.self) { try file.floats(of: "dense.kernel") }
    #expect(
      String(describing: error)
        == "\(path): dataset 'dense.kernel' is not supported: claims 4398046511104 bytes, more than a 2432-byte file holds even compressed")
  }
}
