import Foundation
import Testing
@testable import QFormats

#if canImport(Glibc)
  import Glibc
#endif

/// Safetensors from a pipe, side files and JSON diagnostics: bounded reads that say what is
/// wrong and where.
@Suite struct SafetensorsStreamTests {
  static func le<T: FixedWidthInteger>(_ value: T) -> [UInt8] {
    withUnsafeBytes(of: value.littleEndian) { [UInt8]($0) }
  }

  static func file(_ header: String, data: [UInt8]) -> [UInt8] {
    var json = Array(header.utf8)
    while json.count % 8 != 0 { json.append(0x20) }
    return le(UInt64(json.count)) + json + data
  }

  /// Opens `bytes` through a pipe fed by a thread, as stdin or `<(…)` would arrive; bytes the
  /// reader leaves unread must fit the pipe's buffer (64 KiB), so the feeder never blocks.
  static func openThroughPipe(_ bytes: [UInt8]) throws -> SafetensorsFile {
    var descriptors: [Int32] = [0, 0]
    guard pipe(&descriptors) == 0 else { throw POSIXError(.EIO) }
    let (reader, writer) = (descriptors[0], descriptors[1])
    let feeder = Thread {
      bytes.withUnsafeBytes { raw in
        var offset = 0
        while offset < raw.count {
          let n = write(writer, raw.baseAddress! + offset, raw.count - offset)
          if n <= 0 { break }
          offset += n
        }
      }
      close(writer)
    }
    feeder.start()
    defer { close(reader) }
    return try SafetensorsFile(descriptor: reader, location: "pipe")
  }

  @Test func validStreamReadsLikeTheFile() throws {
    let values: [Float] = [1, -2, 3.5]
    let data = values.withUnsafeBytes { [UInt8]($0) }
    let file = try Self.openThroughPipe(Self.file(#"{"w":{"dtype":"F32","shape":[3],"data_offsets":[0,12]}}"#, data: data))
    #expect(file.tensors.map(\.name) == ["w"])
    #expect(try file.floats(of: "w") == values)
  }

  @Test func streamLongerThanItsHeaderIsRefused() throws {
    let bytes = Self.file(#"{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#, data: [UInt8](repeating: 0, count: 4096))
    let error = try #require(throws: SafetensorsError.self) { try Self.openThroughPipe(bytes) }
    #expect(error == .streamTooLong(location: "pipe", expectedSize: bytes.count - 4096 + 4))
  }

  @Test func headerLengthPastTheStreamIsRefused() throws {
    let error = try #require(throws: SafetensorsError.self) { try Self.openThroughPipe(Self.le(UInt64(1 << 20)) + [0x7B]) }
    #expect(error == .headerPastEnd(location: "pipe", length: 1 << 20, fileSize: 9))
  }

  @Test func sideFileIsBounded() throws {
    #expect(throws: SideFile.Problem.tooLarge(limit: 1024)) { try SideFile.read("/dev/zero", limit: 1024) }
    #expect(throws: SideFile.Problem.notFound) { try SideFile.read("/nonexistent/config.json", limit: 1024) }
    #expect(throws: SideFile.Problem.isFolder) { try SideFile.read("/tmp", limit: 1024) }
    #expect(try SideFile.exists("/tmp"))
    #expect(try !SideFile.exists("/nonexistent/config.json"))
  }

  struct JSONCase: CustomTestStringConvertible, Sendable {
    let text: String
    let expected: JSONSyntaxProblem?
    var testDescription: String { text }
  }

  static let jsonCases: [JSONCase] = [
    JSONCase(text: #"{"a": [1, 2]}"#, expected: nil),
    JSONCase(
      text: "{\n  \"a\": [1,\n  2", expected: JSONSyntaxProblem(offset: 16, line: 3, column: 4, reason: "unexpected end of the file", truncated: true, byteCount: 16)),
    JSONCase(
      text: "{\n  \"a\" 1}", expected: JSONSyntaxProblem(offset: 8, line: 2, column: 7, reason: "expected ':' after the key", truncated: false, byteCount: 10)),
  ]

  @Test(arguments: jsonCases)
  func jsonProblemSaysWhere(_ testCase: JSONCase) {
    let problem = JSONSyntaxProblem.find(in: Data(testCase.text.utf8))
    #expect(problem?.offset == testCase.expected?.offset)
    #expect(problem?.line == testCase.expected?.line)
    #expect(problem?.column == testCase.expected?.column)
    #expect(problem?.truncated == testCase.expected?.truncated)
  }
}
