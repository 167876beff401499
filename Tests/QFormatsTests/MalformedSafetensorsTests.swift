import Foundation
import Testing
@testable import QFormats

/// Every file in `Fixtures/malformed/` must be refused with a message naming the file and
/// the defect, never a crash.
@Suite struct MalformedSafetensorsTests {
  struct Case: CustomTestStringConvertible, Sendable {
    let file: String
    let expected: String
    var testDescription: String { file }
  }

  static let cases: [Case] = {
    guard let text = try? String(contentsOfFile: SafetensorsFixtures.path("malformed", "expected.tsv"), encoding: .utf8)
    else { return [] }
    return text.split(separator: "\n").compactMap { line in
      if line.hasPrefix("#") { return nil }
      let fields = line.split(separator: "\t", maxSplits: 1)
      guard fields.count == 2 else { return nil }
      return Case(file: String(fields[0]), expected: String(fields[1]))
    }
  }()

  @Test func corpusIsComplete() throws {
    #expect(Self.cases.count >= 22)
    let files = try FileManager.default.contentsOfDirectory(atPath: SafetensorsFixtures.path("malformed"))
    #expect(Set(files.filter { $0 != "expected.tsv" }) == Set(Self.cases.map(\.file)))
  }

  @Test(arguments: cases)
  func fileIsRefusedWithItsDefect(_ testCase: Case) throws {
    let path = SafetensorsFixtures.path("malformed", testCase.file)
    let error = try #require(throws: SafetensorsError.self) { try SafetensorsFile(path: path) }
    #expect(error.description.contains(testCase.expected), "\(error)")
    #expect(error.description.contains(testCase.file))
    #expect(!error.description.contains("\n"))
  }

  /// The same bytes from standard input are refused the same way, naming `-`.
  @Test(arguments: cases)
  func bytesInMemoryAreRefusedAlike(_ testCase: Case) throws {
    let bytes = try [UInt8](SafetensorsFixtures.data("malformed", testCase.file))
    let error = try #require(throws: SafetensorsError.self) { try SafetensorsFile(bytes: bytes, location: "-") }
    #expect(error.description.contains(testCase.expected), "\(error)")
    #expect(error.description.hasPrefix("-: "))
  }

  struct InlineCase: CustomTestStringConvertible, Sendable {
    let name: String
    let header: String
    let data: Int
    let expected: String
    var testDescription: String { name }
  }

  static let inlineCases: [InlineCase] = [
    InlineCase(name: "bad escape", header: #"{"a\q":{}}"#, data: 0, expected: "invalid escape"),
    InlineCase(name: "lone surrogate", header: #"{"\ud800":{}}"#, data: 0, expected: "surrogate"),
    InlineCase(name: "leading zero", header: #"{"a":{"dtype":"U8","shape":[01],"data_offsets":[0,1]}}"#, data: 1, expected: "leading zero"),
    InlineCase(name: "trailing comma", header: #"{"a":1,}"#, data: 0, expected: "expected a quoted key"),
    InlineCase(name: "two values", header: #"{} {}"#, data: 0, expected: "after the value"),
    InlineCase(name: "deep nesting", header: String(repeating: "[", count: 100) + String(repeating: "]", count: 100), data: 0, expected: "nesting"),
    InlineCase(name: "entry not object", header: #"{"a":[1]}"#, data: 0, expected: "tensor 'a' is an array"),
    InlineCase(name: "huge offsets", header: #"{"a":{"dtype":"U8","shape":[0],"data_offsets":[0,99999999999999999999]}}"#, data: 0, expected: "not two non-negative integers"),
    InlineCase(name: "escaped duplicate", header: #"{"a":{"dtype":"U8","shape":[0],"data_offsets":[0,0]},"\u0061":{"dtype":"U8","shape":[0],"data_offsets":[0,0]}}"#, data: 0, expected: "names 'a' more than once"),
    InlineCase(name: "zero-size then gap", header: #"{"a":{"dtype":"U8","shape":[0],"data_offsets":[0,0]},"b":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}}"#, data: 2, expected: "leaves a gap"),
  ]

  @Test(arguments: inlineCases)
  func inlineHeaderIsRefused(_ testCase: InlineCase) throws {
    let json = Array(testCase.header.utf8)
    let bytes = withUnsafeBytes(of: UInt64(json.count).littleEndian, Array.init) + json
      + [UInt8](repeating: 0, count: testCase.data)
    let error = try #require(throws: SafetensorsError.self) { try SafetensorsFile(bytes: bytes, location: "inline.safetensors") }
    #expect(error.description.contains(testCase.expected), "\(error)")
  }

  @Test func missingFileAndDirectoryAreSystemErrors() throws {
    let missing = try #require(throws: SafetensorsError.self) { try SafetensorsFile(path: "/nonexistent/x.safetensors") }
    #expect(missing.description == "/nonexistent/x.safetensors: open failed: No such file or directory")
    let directory = try #require(throws: SafetensorsError.self) { try SafetensorsFile(path: SafetensorsFixtures.path("malformed")) }
    #expect(directory.description.contains("Is a directory"))
  }
}
