import Foundation
import Testing
@testable import QFormats

@Suite struct SafetensorsWriterTests {
  static func copy(_ source: any TensorSource, to path: String, order: SafetensorsWriter.Order = .reference,
                   metadata: [String: String] = [:]) throws {
    let writer = try SafetensorsWriter(path: path, plan: source.tensors, metadata: metadata, order: order)
    for tensor in writer.order {
      try source.withRawBytes(of: tensor.name) { try writer.append(name: tensor.name, bytes: $0) }
    }
    try writer.finish()
  }

  static func leftovers(in directory: URL) throws -> [String] {
    try FileManager.default.contentsOfDirectory(atPath: directory.path).filter { $0.contains(".tmp-") }
  }

  /// Same plan and bytes as the Python writer: the file must be identical, header included.
  @Test func reproducesPythonWriterByteForByte() throws {
    let directory = try SafetensorsFixtures.temporaryDirectory()
    defer { try? FileManager.default.removeItem(at: directory) }
    let reference = SafetensorsFixtures.path("safetensors", "files", "numpy_dtypes.safetensors")
    let source = try SafetensorsFile(path: reference)
    let path = directory.appendingPathComponent("copy.safetensors").path
    // Shuffled plan: the reference order must not depend on the caller's order.
    let shuffled = Array(source.tensors.reversed())
    let writer = try SafetensorsWriter(path: path, plan: Array(shuffled))
    for tensor in writer.order {
      try source.withRawBytes(of: tensor.name) { try writer.append(name: tensor.name, bytes: $0) }
    }
    try writer.finish()
    let written = try Data(contentsOf: URL(fileURLWithPath: path))
    #expect(written == (try Data(contentsOf: URL(fileURLWithPath: reference))))
    #expect(written.count == writer.fileSize)
    #expect(try Self.leftovers(in: directory).isEmpty)
  }

  @Test(arguments: ["numpy_dtypes", "scalars_and_empty", "bf16_f8", "whitespace_header"])
  func roundTripsEveryFixtureInGivenOrder(name: String) throws {
    let directory = try SafetensorsFixtures.temporaryDirectory()
    defer { try? FileManager.default.removeItem(at: directory) }
    let source = try SafetensorsFile(path: SafetensorsFixtures.path("safetensors", "files", "\(name).safetensors"))
    let path = directory.appendingPathComponent("out.safetensors").path
    try Self.copy(source, to: path, order: .asGiven, metadata: source.metadata)
    let back = try SafetensorsFile(path: path)
    #expect(back.tensors == source.tensors)
    var expected = source.metadata
    expected["format"] = expected["format"] ?? "pt"
    #expect(back.metadata == expected)
    #expect(back.dataStart % 8 == 0)
    for tensor in source.tensors {
      let a = try source.withRawBytes(of: tensor.name) { Array($0) }
      let b = try back.withRawBytes(of: tensor.name) { Array($0) }
      #expect(a == b, "\(tensor.name)")
    }
  }

  @Test func abandonedWriterLeavesExistingDestinationIntact() throws {
    let directory = try SafetensorsFixtures.temporaryDirectory()
    defer { try? FileManager.default.removeItem(at: directory) }
    let path = directory.appendingPathComponent("model.safetensors").path
    try Data("old contents".utf8).write(to: URL(fileURLWithPath: path))
    do {
      let writer = try SafetensorsWriter(
        path: path, plan: [TensorInfo(name: "a", dtype: .f32, shape: [2]), TensorInfo(name: "b", dtype: .u8, shape: [1])])
      #expect(try Self.leftovers(in: directory).count == 1)
      try writer.append(name: "a", bytes: [UInt8](repeating: 0, count: 8))
      let error = try #require(throws: SafetensorsError.self) { try writer.finish() }
      #expect(error.description.contains("'b'"))
    }
    #expect(try Self.leftovers(in: directory).isEmpty)
    #expect(try String(contentsOfFile: path, encoding: .utf8) == "old contents")
  }

  @Test func finishedWriterReplacesDestination() throws {
    let directory = try SafetensorsFixtures.temporaryDirectory()
    defer { try? FileManager.default.removeItem(at: directory) }
    let path = directory.appendingPathComponent("model.safetensors").path
    try Data("old contents".utf8).write(to: URL(fileURLWithPath: path))
    let writer = try SafetensorsWriter(path: path, plan: [TensorInfo(name: "a", dtype: .u8, shape: [3])])
    try writer.append(name: "a", bytes: [1, 2, 3])
    try writer.finish()
    #expect(try SafetensorsFile(path: path).withRawBytes(of: "a") { Array($0) } == [1, 2, 3])
    #expect(try Self.leftovers(in: directory).isEmpty)
  }

  @Test func appendChecksOrderAndSize() throws {
    let directory = try SafetensorsFixtures.temporaryDirectory()
    defer { try? FileManager.default.removeItem(at: directory) }
    let path = directory.appendingPathComponent("x.safetensors").path
    let writer = try SafetensorsWriter(
      path: path, plan: [TensorInfo(name: "small", dtype: .u8, shape: [1]), TensorInfo(name: "big", dtype: .f64, shape: [1])])
    #expect(writer.order.map(\.name) == ["big", "small"])  // larger alignment first
    let wrongName = try #require(throws: SafetensorsError.self) { try writer.append(name: "small", bytes: [1]) }
    #expect(wrongName.description == "\(path): got tensor 'small' but the plan expects 'big' next")
    let wrongSize = try #require(throws: SafetensorsError.self) { try writer.append(name: "big", bytes: [1]) }
    #expect(wrongSize.description == "\(path): tensor 'big' was given 1 bytes but its dtype and shape need 8")
    try writer.append(name: "big", bytes: [UInt8](repeating: 0, count: 8))
    try writer.append(name: "small", bytes: [9])
    let extra = try #require(throws: SafetensorsError.self) { try writer.append(name: "more", bytes: []) }
    #expect(extra.description.contains("after every planned tensor"))
    try writer.finish()
    #expect(try SafetensorsFile(path: path).tensors.map(\.name) == ["big", "small"])
  }

  struct BadPlan: CustomTestStringConvertible, Sendable {
    let label: String
    let plan: [TensorInfo]
    let expected: String
    var testDescription: String { label }
  }

  @Test(arguments: [
    BadPlan(label: "duplicate", plan: [.init(name: "a", dtype: .u8, shape: []), .init(name: "a", dtype: .u8, shape: [])], expected: "names tensor 'a' twice"),
    BadPlan(label: "reserved", plan: [.init(name: "__metadata__", dtype: .u8, shape: [])], expected: "'__metadata__'"),
    BadPlan(label: "negative", plan: [.init(name: "a", dtype: .u8, shape: [-1])], expected: "invalid shape"),
    BadPlan(label: "overflow", plan: [.init(name: "a", dtype: .f32, shape: [1 << 62, 8])], expected: "invalid shape"),
  ])
  func badPlanIsRefusedBeforeAnyFileIsCreated(_ bad: BadPlan) throws {
    let directory = try SafetensorsFixtures.temporaryDirectory()
    defer { try? FileManager.default.removeItem(at: directory) }
    let path = directory.appendingPathComponent("x.safetensors").path
    let error = try #require(throws: SafetensorsError.self) { try SafetensorsWriter(path: path, plan: bad.plan) }
    #expect(error.description.contains(bad.expected))
    #expect(try FileManager.default.contentsOfDirectory(atPath: directory.path).isEmpty)
  }

  @Test func appendConvertingNarrowsToPlannedDType() throws {
    let directory = try SafetensorsFixtures.temporaryDirectory()
    defer { try? FileManager.default.removeItem(at: directory) }
    let path = directory.appendingPathComponent("x.safetensors").path
    let values: [Float] = [1, -2.5, 65504, 70000, .nan, 1e-8, 0.1]
    let writer = try SafetensorsWriter(path: path, plan: [TensorInfo(name: "h", dtype: .f16, shape: [7])])
    try values.withUnsafeBufferPointer { try writer.append(name: "h", converting: $0) }
    try writer.finish()
    let bytes = try SafetensorsFile(path: path).withRawBytes(of: "h") { Array($0) }
    // Expected F16 bits from numpy: np.array(values, np.float32).astype(np.float16).
    let expected: [UInt16] = [0x3C00, 0xC100, 0x7BFF, 0x7C00, 0x7E00, 0x0000, 0x2E66]
    let got = stride(from: 0, to: bytes.count, by: 2).map { UInt16(bytes[$0]) | UInt16(bytes[$0 + 1]) << 8 }
    #expect(got == expected)
  }

  @Test func headerIsPaddedToEightBytes() throws {
    for length in 0..<12 {
      let (bytes, _) = try SafetensorsWriter.header(plan: [TensorInfo(name: String(repeating: "x", count: length), dtype: .u8, shape: [])])
      #expect(bytes.count % 8 == 0)
      #expect(bytes[8] == UInt8(ascii: "{"))
    }
  }

  @Test func streamsToDescriptor() throws {
    let directory = try SafetensorsFixtures.temporaryDirectory()
    defer { try? FileManager.default.removeItem(at: directory) }
    let path = directory.appendingPathComponent("stream.safetensors").path
    let descriptor = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
    try #require(descriptor >= 0)
    let source = try SafetensorsFile(path: SafetensorsFixtures.path("safetensors", "files", "numpy_dtypes.safetensors"))
    let writer = try SafetensorsWriter(streamingTo: descriptor, location: "-", plan: source.tensors)
    for tensor in writer.order {
      try source.withRawBytes(of: tensor.name) { try writer.append(name: tensor.name, bytes: $0) }
    }
    try writer.finish()
    close(descriptor)
    let written = try Data(contentsOf: URL(fileURLWithPath: path))
    #expect(written == (try Data(contentsOf: URL(fileURLWithPath: source.location))))
  }

  /// A failed write poisons the writer: nothing later can pretend the stream is whole.
  @Test func writeErrorIsRepeatedByEveryLaterCall() throws {
    let descriptor = open("/dev/full", O_WRONLY)
    try #require(descriptor >= 0)
    defer { close(descriptor) }
    let writer = try SafetensorsWriter(
      streamingTo: descriptor, location: "full", plan: [TensorInfo(name: "a", dtype: .u8, shape: [2 << 20])])
    let first = try #require(throws: SafetensorsError.self) {
      try writer.append(name: "a", bytes: [UInt8](repeating: 1, count: 2 << 20))
    }
    #expect(first.description == "full: write failed: No space left on device")
    let again = try #require(throws: SafetensorsError.self) { try writer.finish() }
    #expect(again == first)
  }
}
