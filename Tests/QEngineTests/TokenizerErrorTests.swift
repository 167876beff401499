import Foundation
import Testing
@testable import QEngine

@Suite struct TokenizerErrorTests {
  static func load(_ json: String) throws -> BPETokenizer {
    let url = FileManager.default.temporaryDirectory.appending(path: "tokenizer-\(UUID().uuidString).json")
    try Data(json.utf8).write(to: url)
    defer { try? FileManager.default.removeItem(at: url) }
    return try BPETokenizer(tokenizerJSON: url, config: nil)
  }

  static let byteLevel = #"{"type":"ByteLevel","add_prefix_space":false,"use_regex":true}"#

  @Test func wordPieceIsRefused() {
    #expect {
      _ = try Self.load(#"{"model":{"type":"WordPiece","vocab":{}},"pre_tokenizer":null}"#)
    } throws: { error in
      guard case .unsupportedModel(_, "WordPiece") = error as? TokenizerError else { return false }
      return "\(error)".hasSuffix("model type 'WordPiece' is not supported (only 'BPE' and 'Unigram')")
    }
  }

  @Test func unknownPreTokenizerIsRefused() {
    let json = #"{"model":{"type":"BPE","vocab":{},"merges":[]},"pre_tokenizer":{"type":"Punctuation"},"decoder":{"type":"ByteLevel"}}"#
    #expect {
      _ = try Self.load(json)
    } throws: { error in
      guard case .unsupportedComponent(_, "pre_tokenizer", "Punctuation") = error as? TokenizerError else { return false }
      return true
    }
  }

  @Test func unknownSplitPatternIsRefused() {
    let json = #"{"model":{"type":"BPE","vocab":{},"merges":[]},"pre_tokenizer":{"type":"Sequence","pretokenizers":[{"type":"Split","pattern":{"Regex":"\\w+"},"behavior":"Isolated","invert":false},"#
      + Self.byteLevel + #"]},"decoder":{"type":"ByteLevel"}}"#
    #expect {
      _ = try Self.load(json)
    } throws: { error in
      guard case .unsupportedPattern(_, #"\w+"#) = error as? TokenizerError else { return false }
      return true
    }
  }

  @Test func mergeOutsideTheVocabularyIsRefused() {
    let json = #"{"model":{"type":"BPE","vocab":{"a":0},"merges":["a b"]},"pre_tokenizer":"#
      + Self.byteLevel + #","decoder":{"type":"ByteLevel"}}"#
    #expect {
      _ = try Self.load(json)
    } throws: { error in
      guard case .mergeOutOfVocabulary(_, "a b") = error as? TokenizerError else { return false }
      return true
    }
  }

  @Test func unknownNormalizerIsRefused() {
    let json = #"{"model":{"type":"BPE","vocab":{},"merges":[]},"normalizer":{"type":"Lowercase"},"pre_tokenizer":"#
      + Self.byteLevel + #","decoder":{"type":"ByteLevel"}}"#
    #expect {
      _ = try Self.load(json)
    } throws: { error in
      guard case .unsupportedComponent(_, "normalizer", "Lowercase") = error as? TokenizerError else { return false }
      return true
    }
  }
}
