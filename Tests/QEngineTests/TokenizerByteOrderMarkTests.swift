import Foundation
import Testing

@testable import QEngine

/// U+FEFF written raw in tokenizer.json, as transformers writes Gemma 3's SentencePiece
/// vocabulary: Foundation's JSON reader on Linux drops it inside strings, so it is escaped
/// before parsing and the tokens holding it keep their ids.
@Suite struct TokenizerByteOrderMarkTests {
  @Test func tokensHoldingARawByteOrderMarkKeepTheirIDs() throws {
    let mark = "\u{FEFF}"
    // A byte order mark at the start of the file, and the character raw in keys and a merge.
    let json =
      mark + #"{"model":{"type":"BPE","vocab":{"a":0,""# + mark + #"":1,""# + mark + mark + #"":2,"a"# + mark
      + #"":3},"merges":[""# + mark + " " + mark + #"","a "# + mark + #""]},"pre_tokenizer":null}"#
    let url = FileManager.default.temporaryDirectory.appending(path: "tokenizer-\(UUID().uuidString).json")
    try Data(json.utf8).write(to: url)
    defer { try? FileManager.default.removeItem(at: url) }
    let tokenizer = try BPETokenizer(tokenizerJSON: url, config: nil)
    #expect(tokenizer.id(of: mark) == 1)
    #expect(tokenizer.id(of: mark + mark) == 2)
    #expect(tokenizer.id(of: "a" + mark) == 3)
    #expect(tokenizer.id(of: "") == nil)
  }

  @Test func escapingLeavesOtherBytesAlone() {
    let text = "{\"k\u{FEFF}é\":\"\u{FEFF}\"}"
    let escaped = String(decoding: BPETokenizer.escapingByteOrderMarks(Data(text.utf8)), as: UTF8.self)
    #expect(escaped == #"{"k\ufeffé":"\ufeff"}"#)
    #expect(BPETokenizer.escapingByteOrderMarks(Data()) == Data())
    #expect(BPETokenizer.escapingByteOrderMarks(Data([0xEF, 0xBB])) == Data([0xEF, 0xBB]))
  }
}
