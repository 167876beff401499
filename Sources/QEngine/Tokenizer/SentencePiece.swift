import QFormats

/// The `Metaspace` pre-tokenizer: spaces become `▁`, one is prepended as `prepend_scheme`
/// says, and with `split` each piece starts at a `▁` (the delimiter goes with what follows).
struct Metaspace: Sendable, Equatable {
  enum PrependScheme: String, Sendable {
    case always, first, never
  }
  var replacement: Unicode.Scalar = "\u{2581}"
  var prependScheme: PrependScheme = .always
  var split = true

  /// The words of one text segment; `atStart` tells whether the segment begins the text
  /// (the `first` scheme prepends only there, as `tokenizers` checks the original offset).
  func words(of text: Substring, atStart: Bool) -> [Substring] {
    var scalars = String.UnicodeScalarView()
    let startsWithReplacement = text.unicodeScalars.first == " " || text.unicodeScalars.first == replacement
    switch prependScheme {
    case .always where !startsWithReplacement, .first where atStart && !startsWithReplacement:
      scalars.append(replacement)
    default:
      break
    }
    for scalar in text.unicodeScalars { scalars.append(scalar == " " ? replacement : scalar) }
    let replaced = String(scalars)
    guard split else { return replaced.isEmpty ? [] : [replaced[...]] }
    var words: [Substring] = []
    let view = replaced.unicodeScalars
    var start = view.startIndex
    var index = view.startIndex
    while index < view.endIndex {
      if view[index] == replacement && index > start {
        words.append(Substring(view[start..<index]))
        start = index
      }
      index = view.index(after: index)
    }
    if start < view.endIndex { words.append(Substring(view[start...])) }
    return words
  }
}

extension String {
  /// Every occurrence of `pattern` replaced, comparing UTF-8 bytes (not characters, so a
  /// space before a combining mark still matches, as in Rust's `str::replace`).
  func replacingLiteral(_ pattern: String, with content: String) -> String {
    let needle = Array(pattern.utf8)
    guard !needle.isEmpty, utf8.count >= needle.count else { return self }
    let bytes = Array(utf8)
    let replacement = Array(content.utf8)
    var result: [UInt8] = []
    result.reserveCapacity(bytes.count)
    var index = 0
    var changed = false
    while index < bytes.count {
      if bytes[index] == needle[0], index + needle.count <= bytes.count,
        bytes[index..<(index + needle.count)].elementsEqual(needle)
      {
        result.append(contentsOf: replacement)
        index += needle.count
        changed = true
      } else {
        result.append(bytes[index])
        index += 1
      }
    }
    return changed ? String(decoding: result, as: UTF8.self) : self
  }
}

/// One step of a SentencePiece-style `decoder` chain, applied to the list of token strings.
enum PieceDecoder: Sendable, Equatable {
  case replace(pattern: String, content: String)
  /// Runs of `<0xNN>` tokens become their bytes as UTF-8, or one U+FFFD per byte when invalid.
  case byteFallback
  /// All tokens joined into one.
  case fuse
  /// Up to `start` leading and `stop` trailing `content` characters removed from each token.
  case strip(content: Unicode.Scalar, start: Int, stop: Int)
  /// `▁` to space, except in the first token where a prepending scheme drops it.
  case metaspace(replacement: Unicode.Scalar, prepends: Bool)

  static func decode(_ tokens: [String], with steps: [PieceDecoder]) -> String {
    var tokens = tokens
    for step in steps { tokens = step.apply(tokens) }
    return tokens.joined()
  }

  func apply(_ tokens: [String]) -> [String] {
    switch self {
    case .replace(let pattern, let content):
      return tokens.map { $0.replacingLiteral(pattern, with: content) }
    case .fuse:
      return [tokens.joined()]
    case .strip(let content, let start, let stop):
      return tokens.map { token in
        let characters = Array(token.unicodeScalars)
        var lower = 0
        while lower < min(start, characters.count) && characters[lower] == content { lower += 1 }
        var upper = characters.count
        while characters.count - upper < stop && upper > lower && characters[upper - 1] == content { upper -= 1 }
        var result = String.UnicodeScalarView()
        result.append(contentsOf: characters[lower..<upper])
        return String(result)
      }
    case .metaspace(let replacement, let prepends):
      return tokens.enumerated().map { index, token in
        var result = String.UnicodeScalarView()
        for scalar in token.unicodeScalars {
          if scalar == replacement {
            if index == 0 && prepends { continue }
            result.append(" ")
          } else {
            result.append(scalar)
          }
        }
        return String(result)
      }
    case .byteFallback:
      var result: [String] = []
      var pending: [UInt8] = []
      func flush() {
        guard !pending.isEmpty else { return }
        if let text = String(validating: pending, as: UTF8.self) {
          result.append(text)
        } else {
          result.append(contentsOf: repeatElement("\u{FFFD}", count: pending.count))
        }
        pending.removeAll()
      }
      for token in tokens {
        if let byte = Self.fallbackByte(token) {
          pending.append(byte)
        } else {
          flush()
          result.append(token)
        }
      }
      flush()
      return result
    }
  }

  /// The byte a `<0xNN>` token stands for.
  static func fallbackByte(_ token: String) -> UInt8? {
    let utf8 = Array(token.utf8)
    guard utf8.count == 6, utf8[0] == UInt8(ascii: "<"), utf8[1] == UInt8(ascii: "0"),
      utf8[2] == UInt8(ascii: "x"), utf8[5] == UInt8(ascii: ">")
    else { return nil }
    return UInt8(String(decoding: utf8[3..<5], as: UTF8.self), radix: 16)
  }
}

/// Vocabulary ids of `<0x00>` … `<0xFF>`, -1 where absent.
struct ByteFallbackTable: Sendable {
  let ids: [Int32]

  init(vocabulary: (String) -> Int?) {
    ids = (0..<256).map { byte in
      vocabulary("<0x" + String(byte, radix: 16, uppercase: true).leftPadded(to: 2) + ">").map { Int32($0) } ?? -1
    }
  }

  /// Appends the byte tokens of `bytes` and returns true, or appends nothing and returns false
  /// when one of them is missing (`tokenizers` then falls back to the unknown token).
  func append<S: Collection<UInt8>>(_ bytes: S, to output: inout [Int32]) -> Bool {
    for byte in bytes where ids[Int(byte)] < 0 { return false }
    for byte in bytes { output.append(ids[Int(byte)]) }
    return true
  }
}

extension String {
  fileprivate func leftPadded(to width: Int) -> String {
    count >= width ? self : String(repeating: "0", count: width - count) + self
  }
}

/// BPE over characters with byte fallback (Llama 2, Mistral, Gemma): each character is its
/// vocabulary symbol, else its `<0xNN>` bytes, else the unknown token (consecutive unknowns fused
/// when `fuse_unk`), then merges lowest rank first as in byte-level BPE.
struct CharacterBPEModel: Sendable {
  let merges: BPEModel
  /// Id of each single-character vocabulary entry, by scalar value.
  let characterIDs: [UInt32: Int32]
  let byteFallback: ByteFallbackTable?
  let unknownID: Int32?
  let fuseUnknown: Bool

  func encode(_ word: Substring, into output: inout [Int32]) {
    if merges.ignoreMerges, let id = merges.vocabulary[ExactString(String(word))] {
      output.append(Int32(id))
      return
    }
    var symbols: [Int32] = []
    symbols.reserveCapacity(word.utf8.count)
    var pendingUnknown = false
    for scalar in word.unicodeScalars {
      if let id = characterIDs[scalar.value] {
        if pendingUnknown, let unknownID { symbols.append(unknownID) }
        pendingUnknown = false
        symbols.append(id)
        continue
      }
      // As in `tokenizers`, byte tokens do not end a run of unknowns.
      if let byteFallback, byteFallback.append(String(scalar).utf8, to: &symbols) { continue }
      guard let unknownID else { continue }
      if pendingUnknown && !fuseUnknown { symbols.append(unknownID) }
      pendingUnknown = true
    }
    if pendingUnknown, let unknownID { symbols.append(unknownID) }
    if symbols.count > 48 {
      merges.mergeWithHeap(&symbols)
    } else {
      merges.mergeByScan(&symbols)
    }
    output.append(contentsOf: symbols)
  }
}

/// SentencePiece unigram: the segmentation of a word maximizing the summed piece scores
/// (Viterbi over UTF-8 byte positions), as `tokenizers`' `Unigram::encode_optimized`.
struct UnigramModel: Sendable {
  /// Trie over UTF-8 bytes: `node << 8 | byte` to child node; node 0 is the root.
  let children: [UInt64: Int32]
  /// Id of the piece ending at each node, -1 where none does.
  let nodeIDs: [Int32]
  let scores: [Double]
  let pieceToID: Vocabulary
  let unknownID: Int?
  /// The lowest score of the vocabulary minus 10, given to an unknown character.
  let unknownScore: Double
  let byteFallback: ByteFallbackTable?

  init(pieces: [(String, Double)], unknownID: Int?, byteFallback: Bool) {
    var children: [UInt64: Int32] = [:]
    var nodeIDs: [Int32] = [-1]
    var toID: Vocabulary = [:]
    var minimum = Double.infinity
    for (id, (piece, score)) in pieces.enumerated() {
      toID[ExactString(piece)] = id
      minimum = min(minimum, score)
      var node: Int32 = 0
      for byte in piece.utf8 {
        let key = UInt64(UInt32(node)) << 8 | UInt64(byte)
        if let child = children[key] {
          node = child
        } else {
          let child = Int32(nodeIDs.count)
          nodeIDs.append(-1)
          children[key] = child
          node = child
        }
      }
      if node != 0 { nodeIDs[Int(node)] = Int32(id) }
    }
    // A later duplicate piece owns the spelling, as in the `tokenizers` map.
    for (piece, id) in toID {
      var node: Int32 = 0
      for byte in piece.string.utf8 { node = children[UInt64(UInt32(node)) << 8 | UInt64(byte)] ?? 0 }
      if node != 0 { nodeIDs[Int(node)] = Int32(id) }
    }
    self.children = children
    self.nodeIDs = nodeIDs
    self.scores = pieces.map(\.1)
    self.pieceToID = toID
    self.unknownID = unknownID
    self.unknownScore = minimum - 10
    self.byteFallback = byteFallback ? ByteFallbackTable(vocabulary: { toID[ExactString($0)] }) : nil
  }

  func encode(_ word: Substring, into output: inout [Int32]) {
    let bytes = Array(word.utf8)
    let size = bytes.count
    guard size > 0 else { return }
    var bestScore = [Double](repeating: 0, count: size + 1)
    var startsAt = [Int](repeating: -1, count: size + 1)
    var bestID = [Int32](repeating: 0, count: size + 1)
    let unknown = Int32(unknownID ?? -1)
    var start = 0
    while start < size {
      let scoreSoFar = bestScore[start]
      let lead = bytes[start]
      let characterLength = lead < 0x80 ? 1 : lead < 0xE0 ? 2 : lead < 0xF0 ? 3 : 4
      var hasSingle = false
      var node: Int32 = 0
      var position = start
      while position < size, let child = children[UInt64(UInt32(node)) << 8 | UInt64(bytes[position])] {
        node = child
        position += 1
        let id = nodeIDs[Int(node)]
        guard id >= 0 else { continue }
        let candidate = scores[Int(id)] + scoreSoFar
        if startsAt[position] < 0 || candidate > bestScore[position] {
          bestScore[position] = candidate
          startsAt[position] = start
          bestID[position] = id
        }
        if position - start == characterLength { hasSingle = true }
      }
      let end = min(start + characterLength, size)
      if !hasSingle {
        let candidate = unknownScore + scoreSoFar
        if startsAt[end] < 0 || candidate > bestScore[end] {
          bestScore[end] = candidate
          startsAt[end] = start
          bestID[end] = unknown
        }
      }
      start = end
    }
    // Back from the end; consecutive unknown characters are fused into one piece.
    var pieces: [(id: Int32, range: Range<Int>)] = []
    var end = size
    var unknownStart = -1
    var unknownEnd = -1
    while end > 0 {
      let begin = startsAt[end]
      guard begin >= 0 else { return }
      if unknownID != nil && bestID[end] == unknown {
        if unknownStart < 0 { unknownEnd = end }
        unknownStart = begin
      } else {
        if unknownStart >= 0 {
          pieces.append((unknown, unknownStart..<unknownEnd))
          unknownStart = -1
        }
        pieces.append((bestID[end], begin..<end))
      }
      end = begin
    }
    if unknownStart >= 0 { pieces.append((unknown, unknownStart..<unknownEnd)) }
    for (id, range) in pieces.reversed() {
      if id != unknown {
        output.append(id)
        continue
      }
      // The fused text itself may be a piece; else its bytes, else the unknown id.
      let text = String(decoding: bytes[range], as: UTF8.self)
      if let known = pieceToID[ExactString(text)] {
        output.append(Int32(known))
      } else if let byteFallback, byteFallback.append(bytes[range], to: &output) {
        continue
      } else if unknown >= 0 {
        output.append(unknown)
      }
    }
  }
}

/// The model of a SentencePiece-style tokenizer.
enum PieceModel: Sendable {
  case bpe(CharacterBPEModel)
  case unigram(UnigramModel)

  func encode(_ word: Substring, into output: inout [Int32]) {
    switch self {
    case .bpe(let model): model.encode(word, into: &output)
    case .unigram(let model): model.encode(word, into: &output)
    }
  }
}
