import Foundation
import Testing

@testable import QFormats

@Suite struct GGUFWriterTests {
  /// Writes the plan described by a fixture's JSON with our writer.
  private func write(_ expected: GGUFExpectedFile, to path: String) throws {
    let plan = try expected.tensors.map { tensor in
      GGUFTensorPlan(
        name: tensor.name, type: try #require(GGMLType(name: tensor.type)), shape: tensor.shape)
    }
    let writer = try GGUFWriter(
      path: path, kvs: expected.kvs.map { ($0.key, $0.value.value) }, tensors: plan)
    for tensor in expected.tensors {
      try writer.append(name: tensor.name, bytes: GGUFFixtures.bytes(hex: tensor.hex))
    }
    try writer.finish()
  }

  private func contents(_ directory: URL) throws -> [String] {
    try FileManager.default.contentsOfDirectory(atPath: directory.path).sorted()
  }

  @Test(arguments: ["all_types", "quantized"])
  func matchesReferenceWriterByteForByte(name: String) throws {
    let directory = try makeGGUFScratchDirectory()
    defer { try? FileManager.default.removeItem(at: directory) }
    let path = directory.appending(path: name + ".gguf").path
    try write(try GGUFFixtures.expected(name), to: path)
    let ours = try Data(contentsOf: URL(fileURLWithPath: path))
    let theirs = try Data(contentsOf: URL(fileURLWithPath: GGUFFixtures.path(name + ".gguf")))
    #expect(ours.count == theirs.count)
    let firstDifference = zip(ours, theirs).enumerated().first { $1.0 != $1.1 }?.offset
    #expect(firstDifference == nil)
    #expect(try contents(directory) == [name + ".gguf"])
  }

  @Test func addsAlignmentAndQuantizationVersion() throws {
    let directory = try makeGGUFScratchDirectory()
    defer { try? FileManager.default.removeItem(at: directory) }
    let path = directory.appending(path: "q.gguf").path
    let q8 = [UInt8](repeating: 0x11, count: 2 * 34)
    let f32 = (0..<3).flatMap { i in
      withUnsafeBytes(of: Float(i).bitPattern.littleEndian, Array.init)
    }
    let writer = try GGUFWriter(
      path: path, kvs: [("general.architecture", .string("llama"))],
      tensors: [
        GGUFTensorPlan(name: "norm", type: .f32, shape: [3]),
        GGUFTensorPlan(name: "w", type: .q8_0, shape: [2, 32]),
      ],
      alignment: 128)
    try writer.append(name: "norm", bytes: f32)
    try writer.append(name: "w", bytes: q8)
    try writer.finish()

    let file = try GGUFFile(path: path)
    #expect(
      file.keyValues.map(\.key) == [
        "general.architecture", "general.alignment", "general.quantization_version",
      ])
    #expect(file.values["general.alignment"] == .uint32(128))
    #expect(file.values["general.quantization_version"] == .uint32(2))
    #expect(file.alignment == 128)
    #expect(file.dataStart % 128 == 0)
    #expect(file.allTensors.map(\.offset) == [0, 128])
    #expect(file.quantizedTensors.map(\.shape) == [[2, 32]])
    #expect(try file.withRawBytes(of: "w", Array.init) == q8)
    #expect(try file.withRawBytes(of: "norm", Array.init) == f32)
    #expect(file.fileSize == file.dataStart + 256)
  }

  @Test func defaultAlignmentPlainTensorsAddNoKeys() throws {
    let directory = try makeGGUFScratchDirectory()
    defer { try? FileManager.default.removeItem(at: directory) }
    let path = directory.appending(path: "p.gguf").path
    let writer = try GGUFWriter(
      path: path, kvs: [], tensors: [GGUFTensorPlan(name: "x", type: .i16, shape: [1, 2, 3])])
    try writer.append(name: "x", bytes: [UInt8](0..<12))
    try writer.finish()
    let file = try GGUFFile(path: path)
    #expect(file.keyValues.isEmpty)
    #expect(file.tensors == [TensorInfo(name: "x", dtype: .i16, shape: [1, 2, 3])])
    #expect(file.quantizedTensors.isEmpty)
  }

  @Test func rejectsRowsThatAreNotWholeBlocks() throws {
    let directory = try makeGGUFScratchDirectory()
    defer { try? FileManager.default.removeItem(at: directory) }
    let path = directory.appending(path: "bad.gguf").path
    for shape in [[2, 33], [32, 2], []] {
      #expect(throws: GGUFError.self) {
        try GGUFWriter(
          path: path, kvs: [], tensors: [GGUFTensorPlan(name: "w", type: .q4_0, shape: shape)])
      }
    }
    #expect(throws: GGUFError.self) {
      try GGUFWriter(
        path: path, kvs: [],
        tensors: [GGUFTensorPlan(name: "w", type: .f32, shape: [1, 1, 1, 1, 1])])
    }
    #expect(try contents(directory).isEmpty)
  }

  @Test func rejectsBadPlans() throws {
    let directory = try makeGGUFScratchDirectory()
    defer { try? FileManager.default.removeItem(at: directory) }
    let path = directory.appending(path: "bad.gguf").path
    let f = GGUFTensorPlan(name: "f", type: .f32, shape: [1])
    #expect(throws: GGUFError.badPlan(path: path, defect: "key 'a' appears twice")) {
      try GGUFWriter(path: path, kvs: [("a", .uint8(1)), ("a", .uint8(2))], tensors: [])
    }
    #expect(throws: GGUFError.badPlan(path: path, defect: "tensor 'f' appears twice")) {
      try GGUFWriter(path: path, kvs: [], tensors: [f, f])
    }
    #expect(throws: GGUFError.badPlan(path: path, defect: "key 'a' is an array of u8 holding a i8"))
    {
      try GGUFWriter(
        path: path, kvs: [("a", .array(elementType: .uint8, [.uint8(1), .int8(2)]))], tensors: [])
    }
    #expect(throws: GGUFError.badPlan(path: path, defect: "alignment 48 is not a power of 2")) {
      try GGUFWriter(path: path, kvs: [], tensors: [], alignment: 48)
    }
    #expect(throws: GGUFError.badPlan(path: path, defect: "alignment 0 is not a power of 2")) {
      try GGUFWriter(path: path, kvs: [("general.alignment", .uint32(0))], tensors: [])
    }
    #expect(try contents(directory).isEmpty)
  }

  @Test func wrongAppendRemovesTemporaryFileAndKeepsDestination() throws {
    let directory = try makeGGUFScratchDirectory()
    defer { try? FileManager.default.removeItem(at: directory) }
    let path = directory.appending(path: "out.gguf").path
    try Data("old".utf8).write(to: URL(fileURLWithPath: path))
    let plan = [
      GGUFTensorPlan(name: "a", type: .f16, shape: [2]),
      GGUFTensorPlan(name: "b", type: .f16, shape: [1]),
    ]

    let wrongSize = try GGUFWriter(path: path, kvs: [], tensors: plan)
    #expect(try contents(directory) == [".out.gguf.tmp-\(getpid())", "out.gguf"])
    #expect(
      throws: GGUFError.badPlan(path: path, defect: "tensor 'a' has 3 bytes, F16 [2] needs 4")
    ) {
      try wrongSize.append(name: "a", bytes: [1, 2, 3])
    }
    #expect(try contents(directory) == ["out.gguf"])
    #expect(throws: GGUFError.self) { try wrongSize.finish() }

    let wrongOrder = try GGUFWriter(path: path, kvs: [], tensors: plan)
    #expect(
      throws: GGUFError.badPlan(path: path, defect: "tensor 'b' appended where the plan has 'a'")
    ) {
      try wrongOrder.append(name: "b", bytes: [1, 2])
    }
    let early = try GGUFWriter(path: path, kvs: [], tensors: plan)
    try early.append(name: "a", bytes: [1, 2, 3, 4])
    #expect(
      throws: GGUFError.badPlan(path: path, defect: "finished after 1 of 2 tensors, next is 'b'")
    ) {
      try early.finish()
    }
    #expect(try contents(directory) == ["out.gguf"])
    #expect(try String(contentsOfFile: path, encoding: .utf8) == "old")
  }

  @Test func unfinishedWriterLeavesNothing() throws {
    let directory = try makeGGUFScratchDirectory()
    defer { try? FileManager.default.removeItem(at: directory) }
    let path = directory.appending(path: "out.gguf").path
    do {
      let writer = try GGUFWriter(
        path: path, kvs: [], tensors: [GGUFTensorPlan(name: "a", type: .i8, shape: [1])])
      try writer.append(name: "a", bytes: [7])
      #expect(try contents(directory).count == 1)
    }
    #expect(try contents(directory).isEmpty)
  }

  @Test func roundTripsEveryValueType() throws {
    let directory = try makeGGUFScratchDirectory()
    defer { try? FileManager.default.removeItem(at: directory) }
    let path = directory.appending(path: "kv.gguf").path
    let kvs: [(key: String, value: GGUFValue)] = [
      ("u8", .uint8(200)), ("i8", .int8(-3)), ("u16", .uint16(60000)), ("i16", .int16(-300)),
      ("u32", .uint32(4_000_000_000)), ("i32", .int32(-70000)), ("f32", .float32(-0.0)),
      ("bool", .bool(true)), ("string", .string("ünïcödé")), ("u64", .uint64(.max)),
      ("i64", .int64(.min)), ("f64", .float64(.pi)),
      ("empty", .array(elementType: .float64, [])),
      (
        "nested",
        .array(
          elementType: .array,
          [.array(elementType: .uint16, [.uint16(1)]), .array(elementType: .bool, [])])
      ),
    ]
    let writer = try GGUFWriter(path: path, kvs: kvs, tensors: [])
    try writer.finish()
    let file = try GGUFFile(path: path)
    #expect(file.keyValues.map(\.key) == kvs.map(\.key))
    for (actual, wanted) in zip(file.keyValues, kvs) {
      #expect(actual.value.isBitwiseEqual(to: wanted.value), "\(wanted.key)")
    }
  }
}
