import Foundation
import Testing

@testable import QFormats

/// Locates and decodes the fixtures written by `Fixtures/make_gguf_fixtures.py`.
enum GGUFFixtures {
  static let directory = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    .appending(path: "Fixtures/gguf")

  static func path(_ name: String) -> String { directory.appending(path: name).path }

  static func expected(_ name: String) throws -> GGUFExpectedFile {
    let data = try Data(contentsOf: directory.appending(path: name + ".json"))
    return try decoder.decode(GGUFExpectedFile.self, from: data)
  }

  /// The script writes snake_case keys.
  static var decoder: JSONDecoder {
    let decoder = JSONDecoder()
    decoder.keyDecodingStrategy = .convertFromSnakeCase
    return decoder
  }

  /// The malformed files and the substring each one's error must contain.
  static func malformedCases() -> [GGUFMalformedCase] {
    guard
      let text = try? String(
        contentsOf: directory.appending(path: "malformed.tsv"), encoding: .utf8)
    else {
      return []
    }
    return text.split(separator: "\n").filter { !$0.hasPrefix("#") }.compactMap { line in
      let fields = line.split(separator: "\t", maxSplits: 1)
      guard fields.count == 2 else { return nil }
      return GGUFMalformedCase(file: String(fields[0]), message: String(fields[1]))
    }
  }

  static func bytes(hex: String) -> [UInt8] {
    var out: [UInt8] = []
    var index = hex.startIndex
    while index < hex.endIndex {
      let next = hex.index(index, offsetBy: 2)
      out.append(UInt8(hex[index..<next], radix: 16) ?? 0)
      index = next
    }
    return out
  }
}

struct GGUFMalformedCase: Sendable, CustomTestStringConvertible {
  var file: String
  var message: String
  var testDescription: String { file }
}

struct GGUFExpectedFile: Decodable {
  var version: UInt32
  var alignment: Int
  var dataStart: Int
  var fileSize: Int
  var kvs: [GGUFExpectedKV]
  var tensors: [GGUFExpectedTensor]
}

struct GGUFExpectedKV: Decodable {
  var key: String
  var value: GGUFJSONValue
}

struct GGUFExpectedTensor: Decodable {
  var name: String
  var type: String
  var typeId: UInt32
  var shape: [Int]
  var byteCount: Int
  var offset: Int
  var hex: String
}

struct GGUFTypeRow: Decodable {
  var name: String
  var id: UInt32
  var blockSize: Int
  var bytesPerBlock: Int
}

/// A metadata value as the fixture script spells it: integers as decimal strings, floats as bits.
struct GGUFJSONValue: Decodable {
  var value: GGUFValue

  enum Keys: String, CodingKey { case type, value, bits, elementType, items }

  struct Unexpected: Error { var what: String }

  init(from decoder: any Decoder) throws {
    let c = try decoder.container(keyedBy: Keys.self)
    let type = try c.decode(String.self, forKey: .type)
    func integer<T: FixedWidthInteger>(_: T.Type) throws -> T {
      let text = try c.decode(String.self, forKey: .value)
      guard let v = T(text) else { throw Unexpected(what: "\(type) \(text)") }
      return v
    }
    switch type {
    case "u8": value = .uint8(try integer(UInt8.self))
    case "i8": value = .int8(try integer(Int8.self))
    case "u16": value = .uint16(try integer(UInt16.self))
    case "i16": value = .int16(try integer(Int16.self))
    case "u32": value = .uint32(try integer(UInt32.self))
    case "i32": value = .int32(try integer(Int32.self))
    case "u64": value = .uint64(try integer(UInt64.self))
    case "i64": value = .int64(try integer(Int64.self))
    case "f32": value = .float32(Float(bitPattern: try c.decode(UInt32.self, forKey: .bits)))
    case "f64":
      let text = try c.decode(String.self, forKey: .bits)
      guard let bits = UInt64(text) else { throw Unexpected(what: "f64 bits \(text)") }
      value = .float64(Double(bitPattern: bits))
    case "bool": value = .bool(try c.decode(Bool.self, forKey: .value))
    case "string": value = .string(try c.decode(String.self, forKey: .value))
    case "array":
      let elementName = try c.decode(String.self, forKey: .elementType)
      guard let elementType = GGUFValueType.allCases.first(where: { $0.name == elementName }) else {
        throw Unexpected(what: "element type \(elementName)")
      }
      value = .array(
        elementType: elementType, try c.decode([GGUFJSONValue].self, forKey: .items).map(\.value))
    default: throw Unexpected(what: type)
    }
  }
}

extension GGUFValue {
  /// Equality that tells -0.0 from 0.0 and compares NaNs by their bits.
  func isBitwiseEqual(to other: GGUFValue) -> Bool {
    switch (self, other) {
    case (.float32(let a), .float32(let b)): a.bitPattern == b.bitPattern
    case (.float64(let a), .float64(let b)): a.bitPattern == b.bitPattern
    case (.array(let ta, let a), .array(let tb, let b)):
      ta == tb && a.count == b.count && zip(a, b).allSatisfy { $0.isBitwiseEqual(to: $1) }
    default: self == other
    }
  }
}

/// A fresh directory for files the writer tests create, removed by the caller.
func makeGGUFScratchDirectory() throws -> URL {
  let url = FileManager.default.temporaryDirectory.appending(
    path: "gguf-tests-\(UUID().uuidString)")
  try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
  return url
}
