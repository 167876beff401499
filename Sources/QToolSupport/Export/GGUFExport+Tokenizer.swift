import Foundation
import QFormats

extension GGUFExport {
  /// `tokenizer.ggml.*` keys for a byte-level BPE tokenizer.json; filled in a later step.
  static func tokenizerKeyValues(_ data: Data, location: String) throws
    -> [(key: String, value: GGUFValue)]
  {
    []
  }
}
