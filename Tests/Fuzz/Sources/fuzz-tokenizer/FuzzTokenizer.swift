import Foundation
import FuzzSupport
import QEngine

/// Text that reaches every pre-tokenizer branch: letters, digits, punctuation, spaces, newlines,
/// contractions, non-ASCII letters and an emoji.
let sampleText = "Hello, world! It's 2024:\n  naïve café 123456 <|im_start|> 🙂"

/// A `tokenizer.json` from raw bytes (the loader reads a path), then a short text encoded and
/// decoded again.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
  let path = writeScratchFile("tokenizer.json", data, size)
  guard let tokenizer = try? BPETokenizer(tokenizerJSON: URL(fileURLWithPath: path), config: nil) else {
    return 0
  }
  let ids = tokenizer.encode(sampleText)
  _ = tokenizer.decode(ids)
  _ = tokenizer.decode(ids, skipSpecialTokens: true)
  return 0
}
