import Foundation
import Testing
@testable import QEngine

/// `tokenizer.json` inputs found by `Tests/Fuzz` (target `fuzz-tokenizer`), kept in
/// `Fixtures/malformed-found/` with the error each must produce.
@Suite struct FuzzFoundTokenizerTests {
  static let folder = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    .appending(path: "Fixtures/malformed-found")

  /// A vocabulary id near `Int32.max` in a file of a few dozen bytes sized the id-to-token table
  /// from it (16 bytes per id, 32 GiB) and the allocation trapped; it is now refused.
  @Test func hugeVocabularyIDIsRefusedBeforeAllocating() throws {
    let url = Self.folder.appending(path: "tokenizer_huge_vocab_id.json")
    let size = try #require(try FileManager.default.attributesOfItem(atPath: url.path)[.size] as? Int)
    #expect(size < 200)
    #expect {
      _ = try BPETokenizer(tokenizerJSON: url, config: nil)
    } throws: { error in
      guard case .unreadable(let file, let reason) = error as? TokenizerError else { return false }
      return file == url.path && reason.hasPrefix("token 'a' has id 2147483600")
    }
  }

  /// A vocabulary without the byte symbols (as in `Fixtures/diff/layers-old`): a word of several
  /// bytes, none with a symbol, reached the merge loop empty and trapped on `0..<-1`. Those bytes
  /// are dropped, as `tokenizers` 0.23 does: it gives [0, 0] for this text.
  @Test func wordWithoutByteSymbolsEncodesToNothing() throws {
    let url = Self.folder.appending(path: "tokenizer_no_byte_symbols.json")
    let tokenizer = try BPETokenizer(tokenizerJSON: url, config: nil)
    #expect(tokenizer.encode("Hello xx") == [0, 0])
  }
}
