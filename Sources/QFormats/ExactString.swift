/// A string that equals another only when their Unicode scalars are the same.
///
/// Swift's `String` equality is canonical equivalence: ";" (U+003B) and the Greek question mark
/// (U+037E), or "é" and "e" followed by U+0301, are one dictionary key. A tokenizer's vocabulary
/// holds such spellings as distinct tokens with their own ids (Gemma 3's does), so its tables are
/// keyed by this type, as `tokenizers` keys them by bytes.
public struct ExactString: Hashable, Sendable, CustomStringConvertible {
  public let string: String

  public init(_ string: String) { self.string = string }

  public var description: String { string }

  public static func == (left: ExactString, right: ExactString) -> Bool {
    left.string.utf8.elementsEqual(right.string.utf8)
  }

  public func hash(into hasher: inout Hasher) {
    let hashed: Void? = string.utf8.withContiguousStorageIfAvailable {
      hasher.combine(bytes: UnsafeRawBufferPointer($0))
    }
    if hashed == nil {
      for byte in string.utf8 { hasher.combine(byte) }
    }
  }
}
