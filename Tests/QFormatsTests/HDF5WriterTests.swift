import Foundation
import Testing

@testable import QFormats

@Suite("HDF5 writer")
struct HDF5WriterTests {
  /// Deterministic bytes that are valid for the dtype (0/1 for BOOL).
  static func sampleBytes(count: Int, dtype: DType, seed: UInt64) -> [UInt8] {
    var state = seed &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
    return (0..<count).map { _ in
      state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
      let byte = UInt8(truncatingIfNeeded: state >> 33)
      return dtype == .bool ? byte & 1 : byte
    }
  }

  static let shapes: [[Int]] = [[], [0], [1], [7], [2, 3], [3, 0, 2]]

  @Test("Every dtype and shape round-trips bit for bit", arguments: DType.allCases)
  func roundTrip(_ dtype: DType) throws {
    let directory = try HDF5Fixtures.scratchDirectory()
    defer { try? FileManager.default.removeItem(at: directory) }
    let path = directory.appendingPathComponent("out.h5").path
    let writer = try HDF5Writer(path: path, metadata: ["source": "test", "note": "ünïcode"])
    var written: [(TensorInfo, [UInt8])] = []
    for (index, shape) in Self.shapes.enumerated() {
      let info = TensorInfo(name: "model.layer\(index).weight", dtype: dtype, shape: shape)
      let bytes = Self.sampleBytes(count: info.byteCount, dtype: dtype, seed: UInt64(index))
      try bytes.withUnsafeBytes {
        try writer.write(name: info.name, dtype: dtype, shape: shape, bytes: $0)
      }
      written.append((info, bytes))
    }
    #expect(!FileManager.default.fileExists(atPath: path))
    try writer.finish()
    let reader = try HDF5File(path: path)
    #expect(reader.tensors == written.map(\.0))
    #expect(reader.metadata == ["source": "test", "note": "ünïcode"])
    #expect(reader.skipped.isEmpty)
    for (info, bytes) in written {
      #expect(try reader.withRawBytes(of: info.name) { Array($0) } == bytes, "\(info.name)")
    }
    let leftovers = try FileManager.default.contentsOfDirectory(atPath: directory.path)
    #expect(leftovers == ["out.h5"])
  }

  struct NameCase: Sendable, CustomTestStringConvertible {
    var id: String
    var names: [String]
    var expected: String
    var testDescription: String { id }
  }

  static let nameCases: [NameCase] = [
    NameCase(
      id: "dataset then deeper", names: ["a.b", "a.b.c"],
      expected: "tensor 'a.b.c' conflicts with 'a.b': a name cannot be both a group and a dataset"),
    NameCase(
      id: "deeper then dataset", names: ["a.b.c", "a.b"],
      expected: "tensor 'a.b' conflicts with 'a.b.c': a name cannot be both a group and a dataset"),
    NameCase(
      id: "duplicate", names: ["x", "x"],
      expected: "cannot store tensor 'x': a tensor of that name was already written"),
    NameCase(
      id: "empty component", names: ["a..b"],
      expected: "cannot store tensor 'a..b': empty path component"),
    NameCase(
      id: "slash", names: ["a/b"],
      expected: "cannot store tensor 'a/b': '/' is not allowed in tensor names"),
  ]

  @Test("Names that cannot be paths are rejected, naming both tensors", arguments: nameCases)
  func nameErrors(_ testCase: NameCase) throws {
    let directory = try HDF5Fixtures.scratchDirectory()
    defer { try? FileManager.default.removeItem(at: directory) }
    let path = directory.appendingPathComponent("out.h5").path
    let writer = try HDF5Writer(path: path, metadata: [:])
    let bytes: [UInt8] = [0, 0, 0, 0]
    let error = #expect(throws: HDF5Error.self) {
      for name in testCase.names {
        try bytes.withUnsafeBytes {
          try writer.write(name: name, dtype: .f32, shape: [1], bytes: $0)
        }
      }
    }
    #expect(error?.description == "\(path): " + testCase.expected)
    // A rejected name leaves the writer usable.
    try bytes.withUnsafeBytes {
      try writer.write(name: "other", dtype: .f32, shape: [1], bytes: $0)
    }
    try writer.finish()
  }

  @Test("Bad byte counts and bool bytes are rejected")
  func dataErrors() throws {
    let directory = try HDF5Fixtures.scratchDirectory()
    defer { try? FileManager.default.removeItem(at: directory) }
    let path = directory.appendingPathComponent("out.h5").path
    let writer = try HDF5Writer(path: path, metadata: [:])
    let bytes: [UInt8] = [0, 1, 2]
    #expect(throws: HDF5Error.byteCountMismatch(path: path, name: "w", expected: 8, actual: 3)) {
      try bytes.withUnsafeBytes { try writer.write(name: "w", dtype: .f32, shape: [2], bytes: $0) }
    }
    #expect(throws: HDF5Error.invalidBool(path: path, name: "b", index: 2, value: 2)) {
      try bytes.withUnsafeBytes { try writer.write(name: "b", dtype: .bool, shape: [3], bytes: $0) }
    }
  }

  @Test("An unfinished writer leaves nothing behind; a finished one cannot be reused")
  func lifecycle() throws {
    let directory = try HDF5Fixtures.scratchDirectory()
    defer { try? FileManager.default.removeItem(at: directory) }
    let path = directory.appendingPathComponent("out.h5").path
    do {
      let writer = try HDF5Writer(path: path, metadata: ["k": "v"])
      try [UInt8](repeating: 0, count: 4).withUnsafeBytes {
        try writer.write(name: "t", dtype: .i32, shape: [], bytes: $0)
      }
      #expect(try FileManager.default.contentsOfDirectory(atPath: directory.path).count == 1)
    }
    #expect(try FileManager.default.contentsOfDirectory(atPath: directory.path).isEmpty)

    let writer = try HDF5Writer(path: path, metadata: [:])
    try writer.finish()
    #expect(throws: HDF5Error.writerClosed(path: path)) { try writer.finish() }
    #expect(try HDF5File(path: path).tensors.isEmpty)
  }
}
