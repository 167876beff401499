import Foundation
import QFormats

extension GGUFExport {
  /// `tokenizer.ggml.*` keys for a byte-level BPE tokenizer.json: none yet, so the file carries
/// weights and hyper-parameters only.
  static func tokenizerKeyValues(_ data: Data, location: String) throws
    -> [(key: String, value: GGUFValue)]
  {
    []
  }
}
