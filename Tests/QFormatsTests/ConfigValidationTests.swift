import Foundation
import Testing

@testable import QFormats

/// `ModelConfig.validate(against:)`: real configs with their real tensor lists pass; impossible
/// values fail naming config.json and the key.
@Suite struct ConfigValidationTests {
  /// Every recorded real model (Fixtures/configs) passes, against its tensors and alone.
  @Test(arguments: try ArchitectureFixture.all())
  func realConfigsPass(_ fixture: ArchitectureFixture) throws {
    let config = try fixture.modelConfig()
    try config.validate(against: fixture.tensors)
    try config.validate(against: [])
  }

  struct Case: CustomTestStringConvertible, Sendable {
    var json: String
    var message: String
    var testDescription: String { json }
  }

  static let cases = [
    Case(
      json: #"{"num_hidden_layers": -1}"#,
      message: "c.json: 'num_hidden_layers' is -1, not positive"),
    Case(
      json: #"{"num_key_value_heads": 0}"#,
      message: "c.json: 'num_key_value_heads' is 0, not positive"),
    Case(
      json: #"{"hidden_size": 10, "num_attention_heads": 4}"#,
      message: "c.json: 'num_attention_heads' is 4, which does not divide hidden_size 10"),
    Case(
      json: #"{"num_attention_heads": 6, "num_key_value_heads": 4}"#,
      message: "c.json: 'num_key_value_heads' is 4, which does not divide num_attention_heads 6"),
    Case(
      json: #"{"text_config": {"intermediate_size": 0}}"#,
      message: "c.json: 'text_config.intermediate_size' is 0, not positive"),
    Case(
      json: #"{"vision_config": {"num_heads": -3}}"#,
      message: "c.json: 'vision_config.num_heads' is -3, not positive"),
  ]

  @Test(arguments: cases) func impossibleValuesAreNamed(_ testCase: Case) throws {
    let config = try ModelConfig(data: Data(testCase.json.utf8), location: "c.json")
    #expect(throws: ModelError.self) { try config.validate(against: []) }
    do {
      try config.validate(against: [])
    } catch {
      #expect(error.description == testCase.message)
    }
  }

  /// An explicit head_dim frees the heads from dividing the hidden size (Gemma 2: 2304 = 8 x 288,
  /// heads of 256).
  @Test func headDimensionOverridesDivisibility() throws {
    let config = try ModelConfig(
      data: Data(#"{"hidden_size": 10, "num_attention_heads": 4, "head_dim": 3}"#.utf8),
      location: "c.json")
    try config.validate(against: [])
  }

  @Test func layerCountMustMatchTheWeights() throws {
    let config = try ModelConfig(
      data: Data(#"{"model_type": "llama", "num_hidden_layers": 4}"#.utf8), location: "c.json")
    let tensors = (0..<3).map {
      TensorInfo(name: "model.layers.\($0).mlp.up_proj.weight", dtype: .f32, shape: [4, 4])
    }
    #expect(
      throws: ModelError.invalidValue(
        location: "c.json", key: "num_hidden_layers", reason: "is 4, but the weights hold 3 layers")
    ) {
      try config.validate(against: tensors)
    }
  }
}
