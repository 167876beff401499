import Foundation
import QEngine
import QFormats
import Testing

/// The engine runs a config only when its `model_type` is one it implements
/// (Fixtures/model-types, made by `Fixtures/make_model_type_fixtures.py`).
@Suite struct DecoderFamilyTests {
  static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
    .appendingPathComponent("../../Fixtures/model-types").standardized

  struct Case: CustomTestStringConvertible, Sendable {
    var name: String
    var message: String
    var testDescription: String { name }
  }

  static func cases() throws -> [Case] {
    let text = try String(contentsOf: root.appendingPathComponent("expected.tsv"), encoding: .utf8)
    return text.split(separator: "\n").dropFirst().map { line in
      let cells = line.split(separator: "\t", omittingEmptySubsequences: false).map(String.init)
      return Case(name: cells[0], message: cells.count > 1 ? cells[1] : "")
    }
  }

  static func config(_ json: String) throws -> ModelConfig {
    try ModelConfig(data: Data(json.utf8), location: "config.json")
  }

  @Test(arguments: try cases()) func fixtureConfig(_ testCase: Case) throws {
    let path = Self.root.appendingPathComponent("\(testCase.name).config.json").path
    let config = try ModelConfig(
      data: try Data(contentsOf: URL(fileURLWithPath: path)), location: path)
    if testCase.message.isEmpty {
      #expect(try DecoderConfiguration(config).family.rawValue == config.modelType)
    } else {
      #expect(throws: (any Error).self) { try DecoderConfiguration(config) }
      do {
        _ = try DecoderConfiguration(config)
      } catch {
        #expect("\(error)" == "\(path): \(testCase.message)")
      }
    }
  }

  @Test func supportedTypesAreTheRegistry() {
    #expect(
      DecoderFamily.supportedModelTypes
        == ["llama", "mistral", "qwen2", "qwen3", "gemma", "gemma2", "gemma3_text", "smollm3", "phi3"])
  }

  static let sizes =
    #""vocab_size": 16, "hidden_size": 8, "intermediate_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2"#

  @Test func aLLaVATextConfigWithoutModelTypeIsLlama() throws {
    let config = try Self.config(#"{"model_type": "llava", "text_config": {"# + Self.sizes + "}}")
    #expect(try DecoderConfiguration(config).family == .llama)
  }

  @Test func theTextConfigModelTypeDecides() throws {
    let phi = try Self.config(
      #"{"model_type": "llava", "text_config": {"model_type": "phi", "# + Self.sizes + "}}")
    #expect(
      throws: EngineError.unsupportedModelType(
        location: "config.json", modelType: "phi", reason: nil)
    ) {
      try DecoderConfiguration(phi)
    }
    let gemma = try Self.config(
      #"{"model_type": "paligemma", "text_config": {"model_type": "gemma", "# + Self.sizes + "}}")
    #expect(try DecoderConfiguration(gemma).family == .gemma)
    let qwen = try Self.config(
      #"{"model_type": "llava", "text_config": {"model_type": "qwen2", "# + Self.sizes + "}}")
    #expect(try DecoderConfiguration(qwen).family == .qwen2)
  }

  @Test func aMistralWindowAppliesToEveryLayer() throws {
    let config = try Self.config(
      #"{"model_type": "mistral", "sliding_window": 4096, "# + Self.sizes + "}")
    let c = try DecoderConfiguration(config)
    #expect(c.family == .mistral)
    #expect(c.architecture.layers == [.init(slidingWindow: 4096, rope: .init(theta: 10_000))])
    let none = try Self.config(#"{"model_type": "mistral", "sliding_window": null, "# + Self.sizes + "}")
    #expect(try DecoderConfiguration(none).architecture == DecoderArchitecture())
    let invalid = try Self.config(#"{"model_type": "mistral", "sliding_window": 0, "# + Self.sizes + "}")
    #expect(
      throws: DecoderError.invalidConfig(
        location: "config.json", key: "sliding_window", reason: "is not a positive integer")
    ) { try DecoderConfiguration(invalid) }
  }

  @Test func smolLM3LeavesRopeOutOfItsNoPELayers() throws {
    let listed = try Self.config(
      #"{"model_type": "smollm3", "no_rope_layers": [0], "rope_theta": 5.0, "# + Self.sizes + "}")
    #expect(try DecoderConfiguration(listed).architecture.layers == [.init(rope: nil)])
    let bad = try Self.config(#"{"model_type": "smollm3", "no_rope_layers": [2], "# + Self.sizes + "}")
    #expect(
      throws: DecoderError.invalidConfig(
        location: "config.json", key: "no_rope_layers", reason: "has 1 entries, expected 1 of 0 or 1")
    ) { try DecoderConfiguration(bad) }
  }

  @Test func qwenWindowsStartAtMaxWindowLayers() throws {
    let config = try Self.config(
      #"{"model_type": "qwen3", "use_sliding_window": true, "sliding_window": 8, "max_window_layers": 1, "#
        + #""vocab_size": 16, "hidden_size": 8, "intermediate_size": 16, "num_hidden_layers": 3, "num_attention_heads": 2}"#)
    let c = try DecoderConfiguration(config)
    #expect(c.architecture.layers.map(\.slidingWindow) == [nil, 8, 8])
    #expect(c.architecture.queryKeyNorms)
  }

  @Test func aQwen2SlidingWindowSwitchedOffRuns() throws {
    let config = try Self.config(
      #"{"model_type": "qwen2", "use_sliding_window": false, "sliding_window": 64, "# + Self.sizes
        + "}")
    let c = try DecoderConfiguration(config)
    #expect(c.family == .qwen2)
    #expect(c.architecture == DecoderArchitecture())
  }
}
