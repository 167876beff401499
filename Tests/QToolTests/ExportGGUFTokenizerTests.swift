import Foundation
import QFormats
import Testing

@testable import QToolSupport

@Suite struct ExportGGUFTokenizerTests {
  let tokenizer = #"""
    {"added_tokens": [
       {"id": 0, "content": "<|endoftext|>", "special": true},
       {"id": 1, "content": "<|im_start|>", "special": true},
       {"id": 2, "content": "<|im_end|>", "special": true},
       {"id": 6, "content": "<tool>", "special": false}],
     "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
       {"type": "Digits", "individual_digits": true},
       {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true}]},
     "post_processor": null,
     "model": {"type": "BPE", "vocab": {"<|endoftext|>": 0, "<|im_start|>": 1, "<|im_end|>": 2,
       "a": 3, "b": 4, "ab": 5}, "merges": ["a b"]}}
    """#

  func value(_ values: [(key: String, value: GGUFValue)], _ key: String) -> GGUFValue? {
    values.first { $0.key == key }?.value
  }

  @Test func tokensTypesAndMergesFollowTheIds() throws {
    let values = try GGUFExport.tokenizerKeyValues(Data(tokenizer.utf8), vocabSize: 8, location: "m")
    #expect(value(values, "tokenizer.ggml.model") == .string("gpt2"))
    #expect(value(values, "tokenizer.ggml.pre") == .string("smollm"))
    let tokens = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "a", "b", "ab", "<tool>", "[PAD7]"]
    #expect(value(values, "tokenizer.ggml.tokens") == .array(elementType: .string, tokens.map { .string($0) }))
    let types: [Int32] = [3, 3, 3, 1, 1, 1, 4, 5]
    #expect(value(values, "tokenizer.ggml.token_type") == .array(elementType: .int32, types.map { .int32($0) }))
    #expect(value(values, "tokenizer.ggml.merges") == .array(elementType: .string, [.string("a b")]))
    #expect(value(values, "tokenizer.ggml.bos_token_id") == .uint32(1))
    #expect(value(values, "tokenizer.ggml.eos_token_id") == .uint32(2))
    #expect(value(values, "tokenizer.ggml.add_bos_token") == .bool(false))
  }

  @Test func idsBeyondTheEmbeddingAreRejected() {
    #expect(throws: ExportError.self) {
      try GGUFExport.tokenizerKeyValues(Data(tokenizer.utf8), vocabSize: 4, location: "m")
    }
  }

  @Test func nonBPEModelsAreRejectedByName() {
    let unigram = #"{"model": {"type": "Unigram", "vocab": []}}"#
    do {
      _ = try GGUFExport.tokenizerKeyValues(Data(unigram.utf8), vocabSize: 4, location: "m")
      Issue.record("expected an error")
    } catch {
      #expect("\(error)".contains("Unigram"))
    }
  }
}
