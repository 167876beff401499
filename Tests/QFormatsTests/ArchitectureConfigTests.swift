import Foundation
import Testing
@testable import QFormats

@Suite struct ArchitectureConfigTests {
  private func parse(_ json: String, location: String = "config.json") throws -> ModelConfig {
    try ModelConfig(data: Data(json.utf8), location: location)
  }

  @Test func readsKnownKeysAndKeepsTheRest() throws {
    let config = try parse(
      #"""
      {"model_type": "qwen2", "architectures": ["Qwen2ForCausalLM"], "hidden_size": 896,
       "num_hidden_layers": 24, "num_attention_heads": 14, "num_key_value_heads": 2,
       "intermediate_size": 4864, "rope_theta": 1000000.0, "rope_scaling": null,
       "max_position_embeddings": 32768, "vocab_size": 151936, "tie_word_embeddings": true,
       "torch_dtype": "bfloat16", "sliding_window": 32768, "_extra": {"nested": [1, "two", null]}}
      """#)
    #expect(config.modelType == "qwen2")
    #expect(config.architectures == ["Qwen2ForCausalLM"])
    #expect(config.hiddenSize == 896)
    #expect(config.numHiddenLayers == 24)
    #expect(config.numAttentionHeads == 14)
    #expect(config.numKeyValueHeads == 2)
    #expect(config.intermediateSize == 4864)
    #expect(config.ropeTheta == 1_000_000)
    #expect(config.ropeScaling == nil)
    #expect(config.maxPositionEmbeddings == 32768)
    #expect(config.vocabSize == 151936)
    #expect(config.tieWordEmbeddings == true)
    #expect(config.torchDType == "bfloat16")
    #expect(config.headDim == nil)
    #expect(config.int("sliding_window") == 32768)
    #expect(config.raw["_extra"]?["nested"] == .array([.number(1), .string("two"), .null]))
  }

  @Test func nestedConfigs() throws {
    let internVL = try parse(
      #"""
      {"model_type": "internvl_chat", "llm_config": {"model_type": "qwen2", "hidden_size": 896},
       "vision_config": {"model_type": "intern_vit_6b", "hidden_size": 1024}}
      """#)
    #expect(internVL.textConfig?.modelType == "qwen2")
    #expect(internVL.textConfig?.hiddenSize == 896)
    #expect(internVL.visionConfig?.hiddenSize == 1024)

    let llava = try parse(
      #"{"model_type": "llava", "text_config": {"model_type": "llama", "vocab_size": 32064}}"#)
    #expect(llava.textConfig?.vocabSize == 32064)
    #expect(llava.visionConfig == nil)
  }

  @Test func quantizationIsKeptRaw() throws {
    let hf = try parse(#"{"quantization_config": {"quant_method": "awq", "bits": 4}}"#)
    #expect(hf.quantization?["bits"] == .number(4))
    let mlx = try parse(#"{"quantization": {"group_size": 64, "bits": 4}}"#)
    #expect(mlx.quantization?["group_size"]?.intValue == 64)
  }

  @Test func ropeScalingIsKeptRaw() throws {
    let config = try parse(#"{"rope_scaling": {"type": "mrope", "mrope_section": [16, 24, 24]}}"#)
    #expect(config.ropeScaling?["type"]?.stringValue == "mrope")
  }

  @Test func newerDtypeKey() throws {
    #expect(try parse(#"{"dtype": "float16"}"#).torchDType == "float16")
  }

  @Test func errorsNameTheFileAndKey() throws {
    #expect(throws: ModelError.self) { try parse("{", location: "m/config.json") }
    do {
      _ = try parse("{", location: "m/config.json")
    } catch let error as ModelError {
      #expect(error.description.hasPrefix("m/config.json: not valid JSON"))
    }
    #expect(throws: ModelError.notAnObject(location: "c.json", key: nil)) { try parse("[1]", location: "c.json") }
    #expect(
      throws: ModelError.wrongType(location: "c.json", key: "hidden_size", expected: "an integer", found: "a string")
    ) { try parse(#"{"hidden_size": "big"}"#, location: "c.json") }
    #expect(
      throws: ModelError.wrongType(location: "c.json", key: "text_config.num_hidden_layers", expected: "an integer", found: "a number")
    ) { try parse(#"{"text_config": {"num_hidden_layers": 2.5}}"#, location: "c.json") }
    #expect(throws: ModelError.notAnObject(location: "c.json", key: "vision_config")) {
      try parse(#"{"vision_config": 3}"#, location: "c.json")
    }
    let message = ModelError.wrongType(location: "c.json", key: "vocab_size", expected: "an integer", found: "a string").description
    #expect(message == "c.json: 'vocab_size' should be an integer but is a string")
  }

  @Test func jsonValueRoundTrips() throws {
    let text = #"{"a":[true,null,1.5,"x"],"b":{"c":-2}}"#
    let value = try JSONDecoder().decode(JSONValue.self, from: Data(text.utf8))
    let again = try JSONDecoder().decode(JSONValue.self, from: JSONEncoder().encode(value))
    #expect(value == again)
    #expect(value["b"]?["c"]?.intValue == -2)
    #expect(value["a"]?.arrayValue?.first?.boolValue == true)
    #expect(JSONValue.number(1e300).intValue == nil)
  }
}
