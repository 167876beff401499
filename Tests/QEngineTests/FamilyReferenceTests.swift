import Foundation
import QFormats
import Testing

@testable import QEngine

/// Each family's forward against its reference on Fixtures/families (transformers; np_llm.py
/// for gemma3-numpy), in one pass and token by token through the key-value cache.
@Suite struct FamilyReferenceTests {
  @Test func fixturesArePresent() {
    #expect(
      FamilyFixtures.cases.map(\.name) == [
        "gemma", "gemma-gelu", "gemma2", "gemma3", "gemma3-legacy", "gemma3-numpy", "gemma3_text", "llama3", "mistral",
        "phi3", "phi3-short", "qwen2", "qwen3", "smollm3",
      ])
  }

  @Test(arguments: FamilyFixtures.cases)
  func logitsMatchTheReference(_ testCase: FamilyFixtures.Case) throws {
    let model = try FamilyFixtures.model(testCase)
    let logits = try model.logits(tokens: testCase.tokens)
    #expect(logits.elements.count == testCase.logits.count)
    let worst = FamilyFixtures.worstDifference(logits.elements, testCase.logits)
    #expect(worst <= FamilyFixtures.tolerance(testCase), "largest difference \(worst)")
  }

  /// A prompt of 3 then one token at a time: later steps see fewer keys than a window of 4
  /// would hide without the mask.
  @Test(arguments: FamilyFixtures.cases)
  func cachedDecodingMatchesTheReference(_ testCase: FamilyFixtures.Case) throws {
    let model = try FamilyFixtures.model(testCase)
    let vocabulary = model.configuration.vocabularySize
    let cache = KeyValueCache(model: model, capacity: testCase.tokens.count)
    var steps = [Array(testCase.tokens.prefix(3))]
    steps += testCase.tokens.dropFirst(3).map { [$0] }
    var start = 0
    for step in steps {
      let hidden = try model.forward(tokens: step, cache: cache)
      let logits = try hidden.withUnsafeBufferPointer { try model.logits(ofHidden: $0, rows: step.count) }
      let reference = testCase.logits[(start * vocabulary)..<((start + step.count) * vocabulary)]
      let worst = FamilyFixtures.worstDifference(logits, reference)
      #expect(worst <= FamilyFixtures.tolerance(testCase), "position \(start): largest difference \(worst)")
      start += step.count
    }
    #expect(cache.length == testCase.tokens.count)
  }

  @Test func gemma3LayersFollowTheConfig() throws {
    let testCase = try #require(FamilyFixtures.cases.first { $0.name == "gemma3_text" })
    let c = try DecoderConfiguration(try FamilyFixtures.config(testCase))
    #expect(c.family == .gemma3Text)
    #expect(c.attention(layer: 0) == .init(slidingWindow: 4, rope: .init(theta: 10_000)))
    #expect(c.attention(layer: 1) == .init(rope: .init(theta: 1_000_000, scaling: .linear(factor: 8))))
    #expect(c.attentionScale == 0.25)
    #expect(c.architecture.embeddingScale == Float(32).squareRoot())
    let legacy = try #require(FamilyFixtures.cases.first { $0.name == "gemma3-legacy" })
    #expect(try DecoderConfiguration(try FamilyFixtures.config(legacy)).architecture == c.architecture)
  }

  @Test func aGemma3WrapperRunsItsTextConfig() throws {
    let config = try ModelConfig(
      data: Data(
        #"{"model_type": "gemma3", "torch_dtype": "bfloat16", "text_config": {"hidden_size": 8, "vocab_size": 16, "intermediate_size": 16, "num_hidden_layers": 3, "num_attention_heads": 2, "sliding_window_pattern": 3, "sliding_window": 16, "query_pre_attn_scalar": 4}}"#
          .utf8), location: "config.json")
    let c = try DecoderConfiguration(config)
    #expect(c.family == .gemma3Text)
    #expect(c.architecture.layers.map(\.slidingWindow) == [16, 16, nil])
    #expect(c.attentionScale == 0.5)
    // sqrt(8) = 2.828..., in the wrapper's BF16: 2.828125.
    #expect(c.architecture.embeddingScale == 2.828125)
  }

  @Test func aBFloat16GemmaScalesItsEmbeddingInBFloat16() throws {
    let config = try ModelConfig(
      data: Data(
        #"{"model_type": "gemma3_text", "torch_dtype": "bfloat16", "hidden_size": 2560, "vocab_size": 16, "intermediate_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2}"#
          .utf8), location: "config.json")
    // sqrt(2560) = 50.596..., which BF16 (8 significant bits) rounds to 50.5.
    #expect(try DecoderConfiguration(config).architecture.embeddingScale == 50.5)
  }
}

/// Each fixture exercises its family's feature: without it the logits leave the tolerance.
@Suite struct FamilyFixtureSensitivityTests {
  struct Change: CustomTestStringConvertible, Sendable {
    var fixture: String
    var feature: String
    var change: @Sendable (inout DecoderConfiguration) -> Void
    var testDescription: String { "\(fixture) without \(feature)" }
  }

  static let changes: [Change] = [
    Change(fixture: "mistral", feature: "its sliding window") { $0.architecture.layers = [] },
    Change(fixture: "gemma3_text", feature: "its sliding window") {
      $0.architecture.layers[0].slidingWindow = nil
    },
    Change(fixture: "gemma3_text", feature: "its local rope base") {
      $0.architecture.layers[0].rope = $0.architecture.layers[1].rope
    },
    Change(fixture: "gemma2", feature: "attention soft-capping") { $0.architecture.attentionSoftcap = nil },
    Change(fixture: "gemma2", feature: "final soft-capping") { $0.architecture.finalSoftcap = nil },
    Change(fixture: "gemma", feature: "the embedding scale") { $0.architecture.embeddingScale = nil },
    Change(fixture: "llama3", feature: "llama3 rope scaling") { $0.ropeScaling = .none },
    Change(fixture: "smollm3", feature: "its NoPE layer") { $0.architecture.layers = [] },
    Change(fixture: "qwen2", feature: "its sliding window") { $0.architecture.layers = [] },
  ]

  @Test(arguments: changes)
  func withoutTheFeatureTheLogitsDiffer(_ change: Change) throws {
    let testCase = try #require(FamilyFixtures.cases.first { $0.name == change.fixture })
    var configuration = try DecoderConfiguration(try FamilyFixtures.config(testCase))
    change.change(&configuration)
    let model = try DecoderModel(source: try FamilyFixtures.source(testCase), configuration: configuration)
    let logits = try model.logits(tokens: testCase.tokens)
    #expect(FamilyFixtures.worstDifference(logits.elements, testCase.logits) > 10 * FamilyFixtures.tolerance(testCase))
  }
}
