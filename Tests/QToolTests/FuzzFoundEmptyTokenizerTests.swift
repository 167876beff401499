import Foundation
import QEngine
import Testing

/// An empty `tokenizer.json` went through Foundation's `Data(contentsOf:)`, which leaks its
/// 4 KB read buffer on an empty file (LeakSanitizer in `fuzz-tokenizer`); it is refused first.
@Suite struct FuzzFoundEmptyTokenizerTests {
  @Test func emptyTokenizerFileIsRefusedAsEmpty() throws {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("empty-\(UUID().uuidString).json")
    try Data().write(to: url)
    defer { try? FileManager.default.removeItem(at: url) }
    #expect {
      _ = try BPETokenizer(tokenizerJSON: url, config: nil)
    } throws: { error in
      guard case .unreadable(let file, let reason) = error as? TokenizerError else { return false }
      return file == url.path && reason == "is empty"
    }
  }
}
