/// A token matched in the text before pre-tokenization (`added_tokens` of `tokenizer.json`).
struct AddedToken: Sendable, Equatable {
  var id: Int
  var content: String
  var singleWord = false
  var leftStrip = false
  var rightStrip = false
  var normalized = false
  var special = false
}

/// Part of a text after the added tokens are taken out.
enum TextSegment: Equatable {
  case text(Substring)
  case token(Int)
}

/// Finds added tokens leftmost-longest, as `tokenizers`' Aho-Corasick matcher does.
struct AddedTokenMatcher: Sendable {
  private let tokens: [AddedToken]
  private let patterns: [[UInt8]]
  /// Indices into `tokens` by first byte, longest pattern first.
  private let byFirstByte: [[Int]]

  /// - Parameter patterns: the text each token matches (its content, normalized when the
  ///   token is matched on normalized text).
  init(tokens: [AddedToken], patterns: [String]) {
    self.tokens = tokens
    self.patterns = patterns.map { Array($0.utf8) }
    var table = [[Int]](repeating: [], count: 256)
    for (index, pattern) in self.patterns.enumerated() where !pattern.isEmpty {
      table[Int(pattern[0])].append(index)
    }
    let lengths = self.patterns.map(\.count)
    byFirstByte = table.map { list in list.sorted { lengths[$0] > lengths[$1] } }
  }

  var isEmpty: Bool { tokens.isEmpty }

  func split(_ text: Substring) -> [TextSegment] {
    if tokens.isEmpty || text.isEmpty { return text.isEmpty ? [] : [.text(text)] }
    let utf8 = text.utf8
    let bytes = Array(utf8)
    var segments: [TextSegment] = []
    var segmentStart = 0
    var position = 0
    func index(_ offset: Int) -> String.Index { utf8.index(utf8.startIndex, offsetBy: offset) }
    bytes.withUnsafeBufferPointer { bytes in
      while position < bytes.count {
        let candidates = byFirstByte[Int(bytes[position])]
        var matched = -1
        for candidate in candidates where Self.matches(patterns[candidate], bytes, at: position) {
          matched = candidate
          break
        }
        guard matched >= 0 else {
          position &+= 1
          continue
        }
        let token = tokens[matched]
        var start = position
        var stop = position &+ patterns[matched].count
        if token.singleWord {
          let before = start == 0 || !Self.isWordScalar(Self.scalar(endingAt: start, in: bytes))
          let after = stop == bytes.count || !Self.isWordScalar(Self.scalar(startingAt: stop, in: bytes))
          if !before || !after {
            position = stop
            continue
          }
        }
        if token.leftStrip {
          while start > segmentStart,
            let scalar = Self.scalar(endingAt: start, in: bytes), scalar.properties.isWhitespace
          {
            start &-= UTF8.width(scalar)
          }
        }
        if token.rightStrip {
          while stop < bytes.count,
            let scalar = Self.scalar(startingAt: stop, in: bytes), scalar.properties.isWhitespace
          {
            stop &+= UTF8.width(scalar)
          }
        }
        if segmentStart < start { segments.append(.text(text[index(segmentStart)..<index(start)])) }
        segments.append(.token(token.id))
        segmentStart = stop
        position = stop
      }
    }
    if segmentStart < bytes.count { segments.append(.text(text[index(segmentStart)...])) }
    return segments
  }

  @inline(__always)
  private static func matches(_ pattern: [UInt8], _ bytes: UnsafeBufferPointer<UInt8>, at position: Int) -> Bool {
    guard position &+ pattern.count <= bytes.count else { return false }
    for offset in 0..<pattern.count where bytes[position &+ offset] != pattern[offset] { return false }
    return true
  }

  private static func scalar(startingAt offset: Int, in bytes: UnsafeBufferPointer<UInt8>) -> Unicode.Scalar? {
    var iterator = bytes[offset...].makeIterator()
    var decoder = UTF8()
    if case .scalarValue(let scalar) = decoder.decode(&iterator) { return scalar }
    return nil
  }

  private static func scalar(endingAt offset: Int, in bytes: UnsafeBufferPointer<UInt8>) -> Unicode.Scalar? {
    var start = offset &- 1
    while start > 0 && bytes[start] & 0xC0 == 0x80 { start &-= 1 }
    return scalar(startingAt: start, in: bytes)
  }

  /// `\w` of the Rust regex crate: alphabetic, marks, decimal digits, connector punctuation, joiners.
  private static func isWordScalar(_ scalar: Unicode.Scalar?) -> Bool {
    guard let scalar else { return false }
    let properties = scalar.properties
    if properties.isAlphabetic || properties.isJoinControl { return true }
    switch properties.generalCategory {
    case .nonspacingMark, .spacingMark, .enclosingMark, .decimalNumber, .connectorPunctuation:
      return true
    default:
      return false
    }
  }
}
