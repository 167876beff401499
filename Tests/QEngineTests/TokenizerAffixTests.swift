import Foundation
import Testing
@testable import QEngine

/// `tokenizer.json` files rewritten by newer `transformers` releases spell absent subword
/// affixes as empty strings; only a non-empty affix changes the tokenization.
@Suite struct TokenizerAffixTests {
  static let fixture = URL(filePath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent().appending(path: "Fixtures/tokenizer/smollm2")

  static func rewritten(prefix: String, suffix: String) throws -> URL {
    let original = try Data(contentsOf: fixture.appending(path: "tokenizer.json"))
    guard var root = try JSONSerialization.jsonObject(with: original) as? [String: Any],
      var model = root["model"] as? [String: Any]
    else { throw CocoaError(.fileReadCorruptFile) }
    model["continuing_subword_prefix"] = prefix
    model["end_of_word_suffix"] = suffix
    root["model"] = model
    let url = FileManager.default.temporaryDirectory.appending(path: "affix-\(UUID().uuidString).json")
    try JSONSerialization.data(withJSONObject: root).write(to: url)
    return url
  }

  @Test func emptyAffixesTokenizeAsAbsentOnes() throws {
    let reference = try BPETokenizer(tokenizerJSON: Self.fixture.appending(path: "tokenizer.json"), config: nil)
    let url = try Self.rewritten(prefix: "", suffix: "")
    defer { try? FileManager.default.removeItem(at: url) }
    let rewritten = try BPETokenizer(tokenizerJSON: url, config: nil)
    let text = "The quick brown fox, 1234 times: naïve café — done.\n  Indented"
    #expect(rewritten.encode(text) == reference.encode(text))
  }

  @Test(arguments: [("##", ""), ("", "</w>")])
  func nonEmptyAffixesAreRefused(prefix: String, suffix: String) throws {
    let url = try Self.rewritten(prefix: prefix, suffix: suffix)
    defer { try? FileManager.default.removeItem(at: url) }
    #expect {
      _ = try BPETokenizer(tokenizerJSON: url, config: nil)
    } throws: { error in
      guard case .unsupportedComponent(_, "model", "BPE with subword affixes") = error as? TokenizerError else { return false }
      return true
    }
  }
}
