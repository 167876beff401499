import Foundation
import QCompute
import QFormats
import Testing

@testable import QEngine

/// Our forward pass against the numpy reference of Fixtures/make_llm_fixtures.py.
@Suite struct LLMReferenceTests {
  @Test func fixturesArePresent() {
    #expect(LLMFixtures.cases.count == 5)
  }

  @Test(arguments: LLMFixtures.cases)
  func logitsMatchTheReference(_ testCase: LLMFixtures.Case) throws {
    let model = try LLMFixtures.model(testCase)
    let logits = try model.logits(tokens: testCase.tokens)
    #expect(logits.rows == testCase.tokens.count)
    #expect(logits.columns == model.configuration.vocabularySize)
    let largest = testCase.logits.map(abs).max() ?? 0
    let tolerance = 1e-4 * max(largest, 1)
    var worst: Float = 0
    for (ours, reference) in zip(logits.elements, testCase.logits) { worst = max(worst, abs(ours - reference)) }
    #expect(worst <= tolerance, "largest difference \(worst), tolerance \(tolerance)")
  }

  @Test(arguments: LLMFixtures.cases)
  func perplexityMatchesTheReference(_ testCase: LLMFixtures.Case) throws {
    let model = try LLMFixtures.model(testCase)
    let result = try model.perplexity(tokens: testCase.tokens, context: testCase.context)
    #expect(result.scoredTokens == testCase.scored)
    #expect(abs(result.meanNegativeLogLikelihood - testCase.meanNLL) <= 1e-5 * testCase.meanNLL)
    #expect(abs(result.perplexity - exp(testCase.meanNLL)) <= 1e-4 * exp(testCase.meanNLL))
  }

  /// Greedy decoding with the key-value cache equals greedy decoding by full forward passes.
  /// Dynamic scaling is left out: its frequencies depend on the length, which a cache fixes per step.
  @Test(arguments: LLMFixtures.cases.filter { $0.name != "tiny-llama-dynamic" })
  func generationMatchesTheReference(_ testCase: LLMFixtures.Case) throws {
    let model = try LLMFixtures.model(testCase)
    let generated = try model.generate(prompt: testCase.prompt, maxTokens: testCase.generated.count)
    #expect(generated == testCase.generated)
    let stopped = try model.generate(
      prompt: testCase.prompt, maxTokens: testCase.generated.count, eos: [testCase.generated[0]])
    #expect(stopped == [testCase.generated[0]])
  }

  /// The cache gives the same logits for a continuation as one pass over the whole sequence.
  @Test func cachedContinuationMatchesOnePass() throws {
    let testCase = try #require(LLMFixtures.cases.first { $0.name == "tiny-qwen2" })
    let model = try LLMFixtures.model(testCase)
    let cache = KeyValueCache(model: model, capacity: testCase.tokens.count)
    _ = try model.forward(tokens: Array(testCase.tokens.prefix(7)), cache: cache)
    let rest = Array(testCase.tokens.dropFirst(7))
    let hidden = try model.forward(tokens: rest, cache: cache)
    let continued = try hidden.withUnsafeBufferPointer { try model.logits(ofHidden: $0, rows: rest.count) }
    let vocabulary = model.configuration.vocabularySize
    let expected = testCase.logits.suffix(rest.count * vocabulary)
    for (ours, reference) in zip(continued, expected) { #expect(abs(ours - reference) <= 1e-3) }
  }

  @Test func hiddenStatesHaveOneEntryPerLayerAndEmbeddings() throws {
    let testCase = try #require(LLMFixtures.cases.first { $0.name == "tiny-qwen2" })
    let model = try LLMFixtures.model(testCase)
    let states = try model.hiddenStates(tokens: testCase.tokens)
    #expect(states.count == model.configuration.layerCount + 1)
    // Index 0 is the embedding rows of the tokens, read independently from the file.
    let embeddings = try LLMFixtures.source(testCase.folder).floats(of: "model.embed_tokens.weight")
    let width = model.configuration.hiddenSize
    for (row, token) in testCase.tokens.enumerated() {
      #expect(states[0].row(row) == Array(embeddings[(token * width)..<((token + 1) * width)]))
    }
    #expect(states.allSatisfy { $0.rows == testCase.tokens.count && $0.columns == width })
  }

  @Test func llavaLanguageModelLoadsUnderItsPrefix() throws {
    let config = try LLMFixtures.config("tiny-llava/config.json")
    let source = try LLMFixtures.source("tiny-llava")
    let model = try DecoderModel(source: source, config: config, prefix: "language_model.")
    let logits = try model.logits(tokens: [1, 2, 3])
    #expect(logits.rows == 3 && logits.columns == 256)
    #expect(logits.elements.allSatisfy { $0.isFinite })
    #expect(throws: EngineError.missingTensor(location: source.location, tensor: "model.embed_tokens.weight")) {
      try DecoderModel(source: source, config: config)
    }
  }

  @Test func rejectsTokensOutsideTheVocabulary() throws {
    let testCase = try #require(LLMFixtures.cases.first)
    let model = try LLMFixtures.model(testCase)
    #expect(throws: DecoderError.tokenOutOfRange(location: model.location, token: 256, vocabularySize: 256)) {
      try model.logits(tokens: [1, 256])
    }
    #expect(throws: DecoderError.self) { try model.logits(tokens: []) }
  }
}
