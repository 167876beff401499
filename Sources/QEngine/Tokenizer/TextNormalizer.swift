import Foundation

/// Normalizers of `tokenizer.json`: the Unicode forms (`NFC`, `NFD`, `NFKC`, `NFKD`) and the
/// SentencePiece-style `Prepend` and `Replace` (a literal string pattern).
enum TextNormalizer: Sendable, Equatable {
  case nfc, nfd, nfkc, nfkd
  /// Puts the string before a non-empty text.
  case prepend(String)
  case replace(pattern: String, content: String)

  static func apply(_ normalizers: [TextNormalizer], to text: Substring) -> String {
    var result = String(text)
    for normalizer in normalizers { result = normalizer.apply(to: result) }
    return result
  }

  func apply(to text: String) -> String {
    switch self {
    case .prepend(let prefix):
      return text.isEmpty ? text : prefix + text
    case .replace(let pattern, let content):
      return text.replacingLiteral(pattern, with: content)
    case .nfc, .nfd, .nfkc, .nfkd:
      break
    }
    // ASCII is unchanged by every form; below U+0300 nothing composes, so NFC leaves it alone.
    let limit: UInt32 = self == .nfc ? 0x300 : 0x80
    if text.unicodeScalars.allSatisfy({ $0.value < limit }) { return text }
    switch self {
    case .nfd: return text.decomposedStringWithCanonicalMapping
    case .nfkc: return text.precomposedStringWithCompatibilityMapping
    case .nfkd: return text.decomposedStringWithCompatibilityMapping
    default: return text.precomposedStringWithCanonicalMapping
    }
  }
}
