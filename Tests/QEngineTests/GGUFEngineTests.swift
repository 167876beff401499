import Foundation
import QCompute
import QFormats
import Testing

@testable import QEngine

/// The engine running GGUF files written by gguf-py as llama.cpp's converter writes them
/// (Fixtures/make_gguf_engine_fixtures.py), against the safetensors fixtures they came from and
/// the numpy reference.
@Suite struct GGUFEngineTests {
  static let folder = LLMFixtures.root.appending(path: "gguf-engine")

  struct ChatExpected: Decodable {
    var context: Int
    var windows: Int
    var scored_tokens: Int
    var perplexity: Double
    var prompt: String
    var generated_ids: [Int]
    var text_ids: [Int]
  }

  func gguf(_ name: String) throws -> GGUFFile {
    try GGUFFile(path: Self.folder.appending(path: name).path)
  }

  func model(_ file: GGUFFile) throws -> DecoderModel {
    let source = try GGUFDecoderSource(file: file)
    return try DecoderModel(
      source: source, config: try ModelConfig(data: source.decoder.configData, location: file.location))
  }

  /// Same weights (F16 or F32 as stored, rows un-permuted exactly) and the same code path as
  /// the safetensors folder: the logits are the same numbers.
  @Test(arguments: [("tiny-llama.gguf", "tiny-llama"), ("tiny-qwen2.gguf", "tiny-qwen2")])
  func logitsEqualTheSafetensorsFixture(_ file: String, _ caseName: String) throws {
    let testCase = try #require(LLMFixtures.cases.first { $0.name == caseName })
    let fromGGUF = try model(try gguf(file))
    let fromSafetensors = try LLMFixtures.model(testCase)
    #expect(fromGGUF.configuration == fromSafetensors.configuration)
    let ours = try fromGGUF.logits(tokens: testCase.tokens).elements
    #expect(ours == (try fromSafetensors.logits(tokens: testCase.tokens).elements))
    // And against the numpy reference, to the fixture's own tolerance.
    let tolerance = 1e-4 * max(testCase.logits.map(abs).max() ?? 0, 1)
    for (value, reference) in zip(ours, testCase.logits) { #expect(abs(value - reference) <= tolerance) }
  }

  @Test func configComesFromTheMetadata() throws {
    let source = try GGUFDecoderSource(file: try gguf("tiny-llama.gguf"))
    let config = try DecoderConfiguration(
      try ModelConfig(data: source.decoder.configData, location: "tiny-llama.gguf"))
    #expect(config.family == .llama)
    #expect(config.vocabularySize == 256)
    #expect(config.hiddenSize == 64)
    #expect(config.layerCount == 2)
    #expect(config.headCount == 4)
    #expect(config.keyValueHeadCount == 2)
    #expect(config.headDimension == 16)
    #expect(config.intermediateSize == 128)
    #expect(config.normEpsilon == 1e-5)
    #expect(config.ropeTheta == 10_000)
    #expect(config.tiedEmbeddings)
    #expect(config.maxPositionEmbeddings == 512)
    #expect(source.info(named: "model.layers.1.self_attn.q_proj.weight")?.shape == [64, 64])
    #expect(source.info(named: "lm_head.weight") == nil)
  }

  /// Q4_1 embedding and Q8_0 matrices (q/k permuted before quantizing, as llama.cpp does):
  /// perplexity and greedy tokens of the numpy reference run on gguf-py's dequantization.
  @Test func quantizedFileMatchesTheNumpyReference() throws {
    let data = try Data(contentsOf: Self.folder.appending(path: "tiny-chat.expected.json"))
    let expected = try JSONDecoder().decode(ChatExpected.self, from: data)
    let file = try gguf("tiny-chat.gguf")
    let model = try model(file)
    let result = try model.perplexity(
      tokens: Array(expected.text_ids.prefix(expected.context * expected.windows)), context: expected.context)
    #expect(result.scoredTokens == expected.scored_tokens)
    #expect(abs(result.perplexity - expected.perplexity) <= 1e-4 * expected.perplexity)
    let tokenizer = try Tokenizer(gguf: file)
    let prompt = tokenizer.encode(expected.prompt)
    #expect(try model.generate(prompt: prompt, maxTokens: expected.generated_ids.count) == expected.generated_ids)
  }

  /// The tokenizer in the metadata gives the ids the Hugging Face tokenizer gives.
  @Test func tokenizerFromMetadataMatchesTokenizerJSON() throws {
    let data = try Data(contentsOf: Self.folder.appending(path: "tiny-chat.expected.json"))
    let expected = try JSONDecoder().decode(ChatExpected.self, from: data)
    let fromGGUF = try Tokenizer(gguf: try gguf("tiny-chat.gguf"))
    let fromJSON = try Tokenizer(folder: LLMFixtures.root.appending(path: "tiny-chat"))
    let text = try String(contentsOf: LLMFixtures.root.appending(path: "tiny-chat.sample.txt"), encoding: .utf8)
    #expect(fromGGUF.encode(text) == expected.text_ids)
    for sample in ["<|im_start|>user\nHi 123 there<|im_end|>\n", "", " x  y\t\n", "café ☕ 42"] {
      #expect(fromGGUF.encode(sample) == fromJSON.encode(sample), "\(sample.debugDescription)")
    }
    #expect(fromGGUF.bosTokenID == fromJSON.bosTokenID)
    #expect(fromGGUF.eosTokenID == fromJSON.eosTokenID)
    #expect(fromGGUF.hasSameVocabulary(as: fromJSON))
    #expect(fromGGUF.decode(expected.text_ids) == text)
    let chat = [ChatMessage(role: "user", content: "Hello")]
    #expect(try fromGGUF.encodeChat(messages: chat) == (try fromJSON.encodeChat(messages: chat)))
  }

  struct SentencePieceExpected: Decodable {
    struct Case: Decodable {
      var text: String
      var ids: [Int]
      var decoded: String
    }
    var bos: Int
    var eos: Int
    var cases: [Case]
  }

  /// A llama (SentencePiece BPE) vocabulary from pieces and scores gives sentencepiece's ids,
  /// BOS first, and decodes back to its text.
  @Test func sentencePieceVocabularyMatchesSentencePiece() throws {
    let data = try Data(contentsOf: Self.folder.appending(path: "tokenizer-sentencepiece.expected.json"))
    let expected = try JSONDecoder().decode(SentencePieceExpected.self, from: data)
    let tokenizer = try Tokenizer(gguf: try gguf("tokenizer-sentencepiece.gguf"))
    #expect(tokenizer.bosTokenID == expected.bos)
    #expect(tokenizer.eosTokenID == expected.eos)
    #expect(tokenizer.addsBOSToken)
    for testCase in expected.cases {
      let ids = tokenizer.encode(testCase.text)
      #expect(ids == testCase.ids, "\(testCase.text.prefix(40).debugDescription)")
      #expect(tokenizer.decode(ids, skipSpecialTokens: true) == testCase.decoded)
    }
  }

  /// `permute` of convert_hf_to_gguf.py, written as its reshape-swap-reshape, undone row by row
  /// at boundary sizes (one head, head dimension 2, several heads).
  @Test(arguments: [(1, 2), (1, 8), (3, 4), (4, 16)])
  func unpermutingUndoesTheConverter(_ heads: Int, _ headDimension: Int) {
    let rows = heads * headDimension
    let columns = 3
    let original = (0..<rows * columns).map { Float($0) }
    // permute: reshape(heads, 2, half, columns).swapaxes(1, 2): GGUF row (h, j, i) = HF row (h, i, j).
    let half = headDimension / 2
    var permuted = [Float](repeating: 0, count: original.count)
    for h in 0..<heads {
      for j in 0..<half {
        for i in 0..<2 {
          let to = h * headDimension + j * 2 + i
          let from = h * headDimension + i * half + j
          for c in 0..<columns { permuted[to * columns + c] = original[from * columns + c] }
        }
      }
    }
    var back = [Float](repeating: -1, count: original.count)
    permuted.withUnsafeBytes { source in
      back.withUnsafeMutableBytes { destination in
        GGUFDecoderSource.unpermuteRows(source, rows: rows, heads: heads, into: destination)
      }
    }
    #expect(back == original)
  }

  @Test func namesMapToHuggingFaceNames() {
    #expect(GGUFDecoderSource.huggingFaceName(of: "token_embd.weight") == "model.embed_tokens.weight")
    #expect(GGUFDecoderSource.huggingFaceName(of: "output.weight") == "lm_head.weight")
    #expect(GGUFDecoderSource.huggingFaceName(of: "output_norm.weight") == "model.norm.weight")
    #expect(GGUFDecoderSource.huggingFaceName(of: "blk.12.attn_q.bias") == "model.layers.12.self_attn.q_proj.bias")
    #expect(GGUFDecoderSource.huggingFaceName(of: "blk.0.ffn_down.weight") == "model.layers.0.mlp.down_proj.weight")
    #expect(GGUFDecoderSource.huggingFaceName(of: "blk.x.attn_q.weight") == nil)
    #expect(GGUFDecoderSource.huggingFaceName(of: "rope_freqs.weight") == nil)
  }

  /// Writes a GGUF holding only `kvs` (and no tensors) and returns the error opening it for the engine.
  func engineError(_ kvs: [(key: String, value: GGUFValue)]) throws -> String {
    let path = FileManager.default.temporaryDirectory.appending(path: "gguf-engine-\(UUID().uuidString).gguf").path
    defer { try? FileManager.default.removeItem(atPath: path) }
    let writer = try GGUFWriter(path: path, kvs: kvs, tensors: [])
    try writer.finish()
    do {
      _ = try GGUFDecoderSource(file: try GGUFFile(path: path))
      return ""
    } catch {
      return "\(error)".replacingOccurrences(of: path, with: "FILE")
    }
  }

  @Test func unsupportedArchitecturesAreRefusedInOneLine() throws {
    #expect(
      try engineError([("general.architecture", .string("gemma2"))])
        == "FILE: GGUF architecture 'gemma2' is not supported (the engine runs 'llama' and 'qwen2')")
    #expect(
      try engineError([]) == "FILE: GGUF key 'general.architecture' is missing; it names the model's architecture")
    #expect(
      try engineError([("general.architecture", .string("llama")), ("llama.embedding_length", .uint32(64))])
        == "FILE: GGUF key 'llama.attention.head_count' is missing")
    #expect(
      try engineError([
        ("general.architecture", .string("llama")), ("llama.embedding_length", .uint32(64)),
        ("llama.attention.head_count", .int32(-4)),
      ]) == "FILE: GGUF key 'llama.attention.head_count' is i32 -4, expected a positive integer")
  }

  @Test func unsupportedTokenizersAreRefusedInOneLine() throws {
    let path = FileManager.default.temporaryDirectory.appending(path: "gguf-tok-\(UUID().uuidString).gguf").path
    defer { try? FileManager.default.removeItem(atPath: path) }
    for (model, pre, message) in [
      ("bert", "default", "FILE: tokenizer.ggml.model 'bert' is not supported (supported: 'gpt2', 'llama')"),
      ("gpt2", "deepseek-llm", "FILE: tokenizer.ggml.pre 'deepseek-llm' is not supported (supported: 'gpt-2', 'smollm', 'qwen2', 'llama-bpe')"),
    ] {
      let writer = try GGUFWriter(
        path: path,
        kvs: [
          ("tokenizer.ggml.model", .string(model)), ("tokenizer.ggml.pre", .string(pre)),
          ("tokenizer.ggml.tokens", .array(elementType: .string, [.string("a")])),
        ], tensors: [])
      try writer.finish()
      do {
        _ = try Tokenizer(gguf: try GGUFFile(path: path))
        Issue.record("\(model)/\(pre) was accepted")
      } catch {
        #expect("\(error)".replacingOccurrences(of: path, with: "FILE") == message)
      }
    }
  }
}
