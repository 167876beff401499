import Foundation

/// Unicode normalizers of `tokenizer.json` (`NFC`, `NFD`, `NFKC`, `NFKD`).
enum TextNormalizer: Sendable, Equatable {
  case nfc, nfd, nfkc, nfkd

  static func apply(_ normalizers: [TextNormalizer], to text: Substring) -> String {
    var result = String(text)
    for normalizer in normalizers { result = normalizer.apply(to: result) }
    return result
  }

  func apply(to text: String) -> String {
    // ASCII is unchanged by every form; below U+0300 nothing composes, so NFC leaves it alone.
    let limit: UInt32 = self == .nfc ? 0x300 : 0x80
    if text.unicodeScalars.allSatisfy({ $0.value < limit }) { return text }
    switch self {
    case .nfc: return text.precomposedStringWithCanonicalMapping
    case .nfd: return text.decomposedStringWithCanonicalMapping
    case .nfkc: return text.precomposedStringWithCompatibilityMapping
    case .nfkd: return text.decomposedStringWithCompatibilityMapping
    }
  }
}
