import Foundation
import Testing
@testable import QFormats

/// Reads files written by the Python `safetensors` package and compares bit for bit.
@Suite struct SafetensorsReaderTests {
  struct ExpectedTensor {
    let name: String
    let dtype: DType
    let shape: [Int]
    let bytes: [UInt8]
    let floatBits: [UInt32]
  }

  struct Expected {
    let tensors: [ExpectedTensor]
    let metadata: [String: String]

    init(_ components: String...) throws {
      let json = try #require(
        try JSONSerialization.jsonObject(
          with: Data(contentsOf: URL(fileURLWithPath: components.reduce(SafetensorsFixtures.root) { $0.appendingPathComponent($1) }.path)))
          as? [String: Any])
      tensors = try #require(json["tensors"] as? [[String: Any]]).map { entry in
        let dtypeName = try #require(entry["dtype"] as? String)
        return ExpectedTensor(
          name: try #require(entry["name"] as? String),
          dtype: try #require(DType(rawValue: dtypeName)),
          shape: try #require(entry["shape"] as? [Int]),
          bytes: [UInt8](hex: try #require(entry["hex"] as? String)),
          floatBits: try #require(entry["float32"] as? [Int]).map { UInt32($0) })
      }
      metadata = json["metadata"] as? [String: String] ?? [:]
    }
  }

  static func sameFloat(_ a: UInt32, _ b: UInt32) -> Bool {
    DTypeConversionTests.sameFloat(a, b)
  }

  static func check(_ source: any TensorSource, against expected: [ExpectedTensor]) throws {
    #expect(Set(source.tensors.map(\.name)) == Set(expected.map(\.name)))
    for tensor in expected {
      let info = try #require(source.info(named: tensor.name))
      #expect(info.dtype == tensor.dtype, "\(tensor.name)")
      #expect(info.shape == tensor.shape, "\(tensor.name)")
      let bytes = try source.withRawBytes(of: tensor.name) { Array($0) }
      #expect(bytes == tensor.bytes, "\(tensor.name)")
      let floats = try source.floats(of: tensor.name)
      #expect(floats.count == tensor.floatBits.count)
      #expect(zip(floats, tensor.floatBits).allSatisfy { sameFloat($0.bitPattern, $1) }, "\(tensor.name)")
    }
  }

  @Test(arguments: ["numpy_dtypes", "scalars_and_empty", "bf16_f8", "whitespace_header"])
  func readsPythonWrittenFile(name: String) throws {
    let expected = try Expected("safetensors", "files", "\(name).expected.json")
    let path = SafetensorsFixtures.path("safetensors", "files", "\(name).safetensors")
    let file = try SafetensorsFile(path: path)
    try Self.check(file, against: expected.tensors)
    #expect(file.metadata == expected.metadata)
    #expect(file.location == path)
    // The same bytes read as if from standard input.
    let fromMemory = try SafetensorsFile(bytes: [UInt8](try SafetensorsFixtures.data("safetensors", "files", "\(name).safetensors")))
    try Self.check(fromMemory, against: expected.tensors)
    #expect(fromMemory.location == "-")
  }

  @Test func tensorsAreInDataOrder() throws {
    let file = try SafetensorsFile(path: SafetensorsFixtures.path("safetensors", "files", "numpy_dtypes.safetensors"))
    let begins = file.entries.map(\.dataRange.lowerBound)
    #expect(begins == begins.sorted())
    #expect(file.tensors.first?.dtype == .u64)  // the reference writer puts U64 first
    #expect(file.dataStart % 8 == 0)
  }

  @Test func unknownTensorIsAnError() throws {
    let file = try SafetensorsFile(path: SafetensorsFixtures.path("safetensors", "files", "scalars_and_empty.safetensors"))
    let error = try #require(throws: SafetensorsError.self) { try file.floats(of: "nope") }
    #expect(error.description.hasSuffix("scalars_and_empty.safetensors: no tensor named 'nope'"))
  }

  @Test func floatsIntoCallerBuffer() throws {
    let file = try SafetensorsFile(path: SafetensorsFixtures.path("safetensors", "files", "whitespace_header.safetensors"))
    var buffer = [Float](repeating: 0, count: 2)
    try buffer.withUnsafeMutableBufferPointer { try file.floats(of: "a", into: $0) }
    #expect(buffer == [1.5, -2.0])
  }

  /// `-` reads standard input; here a pipe stands in for it.
  @Test func readsStandardInput() throws {
    let bytes = try SafetensorsFixtures.data("safetensors", "files", "scalars_and_empty.safetensors")
    var pipeEnds: [Int32] = [0, 0]
    try #require(pipe(&pipeEnds) == 0)
    let written = bytes.withUnsafeBytes { write(pipeEnds[1], $0.baseAddress, $0.count) }
    #expect(written == bytes.count)
    close(pipeEnds[1])
    let savedStandardInput = dup(STDIN_FILENO)
    dup2(pipeEnds[0], STDIN_FILENO)
    close(pipeEnds[0])
    defer {
      dup2(savedStandardInput, STDIN_FILENO)
      close(savedStandardInput)
    }
    let file = try SafetensorsFile(path: "-")
    #expect(file.location == "-")
    let expected = try Expected("safetensors", "files", "scalars_and_empty.expected.json")
    try Self.check(file, against: expected.tensors)
  }

  #if !DEBUG
  /// A header with 100,000 tensors (about 8 MB of JSON) still opens quickly.
  @Test func manyTensorsOpenQuickly() throws {
    let plan = (0..<100_000).map { TensorInfo(name: "model.layers.\($0 / 10).block.\($0 % 10).weight", dtype: .u8, shape: [1]) }
    let (header, order) = try SafetensorsWriter.header(plan: plan)
    let bytes = header + [UInt8](repeating: 7, count: order.count)
    let start = DispatchTime.now().uptimeNanoseconds
    let file = try SafetensorsFile(bytes: bytes)
    let milliseconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6
    print("parsed \(header.count)-byte header of \(file.tensors.count) tensors in \(milliseconds) ms")
    #expect(file.tensors.count == 100_000)
    #expect(milliseconds < 1000)
  }

  /// Opening parses the header only: a 1 GB file opens in well under 20 ms.
  @Test func headerOnlyOpenOfLargeFileIsFast() throws {
    let directory = try SafetensorsFixtures.temporaryDirectory()
    defer { try? FileManager.default.removeItem(at: directory) }
    let path = directory.appendingPathComponent("big.safetensors").path
    let plan = (0..<256).map { TensorInfo(name: "layer.\($0).weight", dtype: .bf16, shape: [1024, 2048]) }
    let (header, _) = try SafetensorsWriter.header(plan: plan)
    let handle = try #require(FileHandle(forWritingAtPath: path) ?? {
      FileManager.default.createFile(atPath: path, contents: nil)
      return FileHandle(forWritingAtPath: path)
    }())
    handle.write(Data(header))
    try handle.truncate(atOffset: UInt64(header.count + 256 * 1024 * 2048 * 2))
    try handle.close()
    let start = DispatchTime.now().uptimeNanoseconds
    let file = try SafetensorsFile(path: path)
    let milliseconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6
    print("opened \(file.fileSize) bytes, \(file.tensors.count) tensors in \(milliseconds) ms")
    #expect(milliseconds < 20)
  }
  #endif
}
