import Foundation
import Testing
@testable import QFormats

/// A config, tensor list and expected facts, made by `Fixtures/configs/make_config_fixtures.py`.
struct ArchitectureFixture: Decodable, CustomTestStringConvertible, Sendable {
  struct Sizes: Decodable, Sendable {
    var hidden_size: Int?
    var layer_count: Int?
    var vocab_size: Int?
    var intermediate_size: Int?
    var attention_heads: Int?
    var key_value_heads: Int?
    var head_dim: Int?
  }
  struct NamesOnly: Decodable, Sendable {
    var family: String?
    var language_family: String?
  }
  struct Expected: Decodable, Sendable {
    var family: String
    var kind: String
    var language_family: String?
    var vision_family: String?
    var language: Sizes?
    var vision: Sizes?
    var names_only: NamesOnly?
    var components: [String: String]?
    var roles: [String: String]?
  }
  /// One `[name, dtype, shape]` row.
  struct Row: Decodable, Sendable {
    var info: TensorInfo
    init(from decoder: any Decoder) throws {
      var row = try decoder.unkeyedContainer()
      let name = try row.decode(String.self)
      let dtype = try row.decode(DType.self)
      let shape = try row.decode([Int].self)
      info = TensorInfo(name: name, dtype: dtype, shape: shape)
    }
  }

  var file: String = ""
  var source: String
  var config: JSONValue
  var rows: [Row]
  var expected: Expected

  var tensors: [TensorInfo] { rows.map(\.info) }
  var testDescription: String { file }

  enum CodingKeys: String, CodingKey {
    case source, config, expected
    case rows = "tensors"
  }

  func modelConfig() throws -> ModelConfig {
    try ModelConfig(data: JSONEncoder().encode(config), location: file)
  }

  static let directory = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    .appendingPathComponent("Fixtures/configs")

  static func load(_ name: String) throws -> ArchitectureFixture {
    let data = try Data(contentsOf: directory.appendingPathComponent(name))
    var fixture = try JSONDecoder().decode(ArchitectureFixture.self, from: data)
    fixture.file = name
    return fixture
  }

  static func all() throws -> [ArchitectureFixture] {
    try FileManager.default.contentsOfDirectory(atPath: directory.path)
      .filter { $0.hasSuffix(".json") }.sorted().map(load)
  }
}
