import Foundation
import Testing
@testable import QEngine

/// SentencePiece-style tokenizers written by `Fixtures/make_sentencepiece_tokenizer_fixtures.py`:
/// BPE with byte fallback in the Llama 2, Mistral (Metaspace), Gemma and Gemma 3 forms, and Unigram.
@Suite struct TokenizerSentencePieceTests {
  static let names = ["sp-llama2", "sp-metaspace", "sp-gemma", "sp-gemma3", "unigram"]

  @Test(arguments: names)
  func idsEqualThePythonPackage(name: String) throws {
    let tokenizer = try TokenizerFixtures.tokenizer(name)
    let expected = try TokenizerFixtures.expected(name)
    #expect(expected.cases.count >= 20)
    var mismatches: [String] = []
    for item in expected.cases {
      if tokenizer.encode(item.text, addSpecialTokens: false) != item.ids { mismatches.append(item.name) }
      if tokenizer.encode(item.text, addSpecialTokens: true) != item.ids_with_special {
        mismatches.append(item.name + " with special tokens")
      }
    }
    #expect(mismatches.isEmpty, "\(name): \(mismatches)")
  }

  @Test(arguments: names)
  func decodeEqualsThePythonPackage(name: String) throws {
    let tokenizer = try TokenizerFixtures.tokenizer(name)
    let expected = try TokenizerFixtures.expected(name)
    for item in expected.cases {
      #expect(tokenizer.decode(item.ids, skipSpecialTokens: false) == item.decoded, "\(name) \(item.name)")
      #expect(
        tokenizer.decode(item.ids, skipSpecialTokens: true) == item.decoded_skipping_special,
        "\(name) \(item.name)")
    }
    #expect(expected.decodes.count == 4)
    for item in expected.decodes {
      #expect(tokenizer.decode(item.ids) == item.text, "\(name) bytes \(item.ids)")
    }
  }

  /// Byte fallback makes every text decodable back to itself, bar what the decoder strips by
  /// design: Llama 2's leading space, and what `tokenizers` itself does not give back.
  @Test(arguments: names)
  func decodeInvertsEncode(name: String) throws {
    let tokenizer = try TokenizerFixtures.tokenizer(name)
    for item in try TokenizerFixtures.expected(name).cases where item.decoded == item.text {
      #expect(tokenizer.decode(tokenizer.encode(item.text, addSpecialTokens: false)) == item.text, "\(item.name)")
    }
  }

  /// Gemma 3's `Split` on " " comes after a normalizer that replaced every space, so it is no
  /// step; the same `Split` is refused where a space can still reach it.
  @Test(arguments: [
    (normalizer: #"{"type":"Replace","pattern":{"String":" "},"content":"▁"}"#, accepted: true),
    (normalizer: #"null"#, accepted: false),
    (normalizer: #"{"type":"Replace","pattern":{"String":" "},"content":" ▁"}"#, accepted: false),
    (normalizer: #"{"type":"Sequence","normalizers":[{"type":"Replace","pattern":{"String":" "},"content":"▁"},{"type":"NFKC"}]}"#, accepted: false),
    (normalizer: #"{"type":"Sequence","normalizers":[{"type":"Replace","pattern":{"String":" "},"content":"▁"},{"type":"Prepend","prepend":"▁"}]}"#, accepted: true),
  ])
  func splitOnAReplacedSpaceIsNoStep(normalizer: String, accepted: Bool) throws {
    let folder = FileManager.default.temporaryDirectory.appendingPathComponent("split-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: folder) }
    // Patched as text: a round trip through Foundation's dictionaries would merge the fixture's
    // canonically equal spellings.
    let source = try String(
      contentsOf: TokenizerFixtures.directory.appending(path: "sp-gemma3/tokenizer.json"), encoding: .utf8)
    let original = #""normalizer":{"type":"Replace","pattern":{"String":" "},"content":"▁"}"#
    #expect(source.contains(original))
    try source.replacingOccurrences(of: original, with: #""normalizer":"# + normalizer)
      .write(to: folder.appendingPathComponent("tokenizer.json"), atomically: true, encoding: .utf8)
    if accepted {
      let tokenizer = try Tokenizer(folder: folder)
      #expect(tokenizer.decode(tokenizer.encode("two  spaces here", addSpecialTokens: false)).hasSuffix("two  spaces here"))
    } else {
      #expect {
        try Tokenizer(folder: folder)
      } throws: { error in
        "\(error)".contains("Split")
      }
    }
  }

  @Test func bytesStandInForCharactersOutsideTheVocabulary() throws {
    let tokenizer = try TokenizerFixtures.tokenizer("sp-llama2")
    let ids = tokenizer.encode("😀", addSpecialTokens: false)
    let bytes = ["<0xF0>", "<0x9F>", "<0x98>", "<0x80>"].compactMap { tokenizer.id(of: $0) }
    #expect(bytes.count == 4)
    #expect(ids.suffix(4) == bytes[...])
    #expect(tokenizer.decode(ids) == "😀")
  }

  @Test func configFlagsDecideBOSAndEOS() throws {
    let mistral = try TokenizerFixtures.tokenizer("sp-metaspace")
    let bos = try #require(mistral.id(of: "<s>"))
    let eos = try #require(mistral.id(of: "</s>"))
    #expect(mistral.bosTokenID == bos)
    #expect(mistral.eosTokenID == eos)
    let ids = mistral.encode("hi", addSpecialTokens: true)
    #expect(ids.first == bos && ids.last == eos)
    let llama2 = try TokenizerFixtures.tokenizer("sp-llama2")
    #expect(llama2.encode("hi", addSpecialTokens: true).first == llama2.id(of: "<s>"))
    #expect(llama2.encode("hi", addSpecialTokens: false).first != llama2.id(of: "<s>"))
  }

  /// The fixture's decoder is `Metaspace` alone, so byte tokens decode as their spelling, as in
  /// `tokenizers`; long runs exercise the Viterbi lattice and the fused-unknown path.
  @Test func unigramLongWordsFallBackToBytes() throws {
    let tokenizer = try TokenizerFixtures.tokenizer("unigram")
    for length in [0, 1, 7, 8, 63, 64, 65, 1000] {
      let text = String(repeating: "ab😀", count: length)
      let decoded = tokenizer.decode(tokenizer.encode(text, addSpecialTokens: false))
      let expected = String(repeating: "ab<0xF0><0x9F><0x98><0x80>", count: length)
      #expect(decoded == expected ? true : false, "length \(length)")
    }
  }

  @Test func evaluationWindowsStartWithBOSOnlyForSentencePieceModels() throws {
    for name in ["sp-llama2", "sp-gemma", "sp-metaspace"] {
      let tokenizer = try TokenizerFixtures.tokenizer(name)
      #expect(tokenizer.windowStartTokenID != nil, "\(name)")
      #expect(tokenizer.windowStartTokenID == tokenizer.bosTokenID, "\(name)")
    }
    #expect(try TokenizerFixtures.tokenizer("unigram").windowStartTokenID == nil)
    for name in TokenizerFixtures.names {
      #expect(try TokenizerFixtures.tokenizer(name).windowStartTokenID == nil, "\(name)")
    }
  }

  @Test func metaspaceSplitsBeforeEachReplacement() {
    let metaspace = Metaspace(replacement: "\u{2581}", prependScheme: .always, split: true)
    #expect(metaspace.words(of: "a  b", atStart: false) == ["\u{2581}a", "\u{2581}", "\u{2581}b"])
    #expect(metaspace.words(of: " x", atStart: true) == ["\u{2581}x"])
    let first = Metaspace(replacement: "\u{2581}", prependScheme: .first, split: false)
    #expect(first.words(of: "a b", atStart: false) == ["a\u{2581}b"])
    #expect(first.words(of: "a b", atStart: true) == ["\u{2581}a\u{2581}b"])
  }
}
