/// The pre-tokenizer forms of byte-level BPE tokenizers, applied in order; each step splits
/// every piece the previous steps produced.
enum PreTokenizerStep: Equatable {
  /// `Digits`: each number scalar alone, or runs of them.
  case digits(individual: Bool)
  /// `ByteLevel` with `use_regex`: the GPT-2 regex.
  case gpt2
  /// `Split` with the Qwen2 (`maxDigits` 1) or Llama 3 (`maxDigits` 3) regex, behaviour `Isolated`.
  case llama3(maxDigits: Int)
}

/// The Qwen2 pattern; Llama 3 differs only in `\p{N}{1,3}`.
let qwen2SplitPattern =
  #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#
let llama3SplitPattern =
  #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#

extension ScalarText {
  /// Pre-token ranges, in scalar indices, covering the whole text in order.
  func preTokenize(_ steps: [PreTokenizerStep]) -> [Range<Int>] {
    var pieces: [Range<Int>] = scalars.isEmpty ? [] : [0..<scalars.count]
    scalars.withUnsafeBufferPointer { scalars in
      classes.withUnsafeBufferPointer { classes in
        for step in steps {
          var next: [Range<Int>] = []
          next.reserveCapacity(pieces.count * 2 + 16)
          for piece in pieces {
            switch step {
            case .digits(let individual):
              Self.splitDigits(classes, piece, individual: individual, into: &next)
            case .gpt2:
              Self.splitGPT2(scalars, classes, piece, into: &next)
            case .llama3(let maxDigits):
              Self.splitLlama3(scalars, classes, piece, maxDigits: maxDigits, into: &next)
            }
          }
          pieces = next
        }
      }
    }
    return pieces
  }

  static func splitDigits(
    _ classes: UnsafeBufferPointer<UInt8>, _ piece: Range<Int>, individual: Bool,
    into output: inout [Range<Int>]
  ) {
    var start = piece.lowerBound
    var i = piece.lowerBound
    while i < piece.upperBound {
      if classes[i] == number {
        if start < i { output.append(start..<i) }
        var end = i &+ 1
        if !individual {
          while end < piece.upperBound && classes[end] == number { end &+= 1 }
        }
        output.append(i..<end)
        i = end
        start = end
      } else {
        i &+= 1
      }
    }
    if start < piece.upperBound { output.append(start..<piece.upperBound) }
  }

  @inline(__always)
  static func isWhitespace(_ c: UInt8) -> Bool { c == space || c == newline }

  /// End of the whitespace alternatives `\s+(?!\S)|\s+` starting at `i`.
  @inline(__always)
  static func whitespaceEnd(_ classes: UnsafeBufferPointer<UInt8>, _ i: Int, _ end: Int) -> Int {
    var j = i &+ 1
    while j < end && isWhitespace(classes[j]) { j &+= 1 }
    if j == end || j &- i == 1 { return j }
    return j &- 1
  }

  /// `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`
  static func splitGPT2(
    _ s: UnsafeBufferPointer<UInt32>, _ classes: UnsafeBufferPointer<UInt8>, _ piece: Range<Int>,
    into output: inout [Range<Int>]
  ) {
    let end = piece.upperBound
    var i = piece.lowerBound
    while i < end {
      let c = classes[i]
      var stop = i &+ 1
      if s[i] == 0x27, let length = contractionLength(s, i, end, ignoringCase: false) {
        stop = i &+ length
      } else if isWhitespace(c) {
        var body = i
        if s[i] == 0x20 && i &+ 1 < end && !isWhitespace(classes[i &+ 1]) { body = i &+ 1 }
        if body > i {
          stop = runEnd(classes, body, end, of: classes[body])
        } else {
          stop = whitespaceEnd(classes, i, end)
        }
      } else {
        stop = runEnd(classes, i, end, of: c)
      }
      output.append(i..<stop)
      i = stop
    }
  }

  @inline(__always)
  static func runEnd(_ classes: UnsafeBufferPointer<UInt8>, _ i: Int, _ end: Int, of c: UInt8) -> Int {
    var j = i &+ 1
    while j < end && classes[j] == c { j &+= 1 }
    return j
  }

  /// Length of `'s|'t|'re|'ve|'m|'ll|'d` at `i` (which holds an apostrophe), if one matches.
  @inline(__always)
  static func contractionLength(
    _ s: UnsafeBufferPointer<UInt32>, _ i: Int, _ end: Int, ignoringCase: Bool
  ) -> Int? {
    guard i &+ 1 < end else { return nil }
    func lower(_ v: UInt32) -> UInt32 {
      guard ignoringCase else { return v }
      if v >= 0x41 && v <= 0x5A { return v &+ 0x20 }
      if v == 0x17F { return 0x73 }  // LATIN SMALL LETTER LONG S folds to 's'
      return v
    }
    let first = lower(s[i &+ 1])
    switch first {
    case 0x73, 0x74, 0x6D, 0x64: return 2  // s t m d
    case 0x72, 0x76:  // r v -> 're 've
      if i &+ 2 < end && lower(s[i &+ 2]) == 0x65 { return 3 }
      return nil
    case 0x6C:  // l -> 'll
      if i &+ 2 < end && lower(s[i &+ 2]) == 0x6C { return 3 }
      return nil
    default: return nil
    }
  }

  /// `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,max}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
  static func splitLlama3(
    _ s: UnsafeBufferPointer<UInt32>, _ classes: UnsafeBufferPointer<UInt8>, _ piece: Range<Int>,
    maxDigits: Int, into output: inout [Range<Int>]
  ) {
    let end = piece.upperBound
    var i = piece.lowerBound
    while i < end {
      let c = classes[i]
      var stop = i &+ 1
      if s[i] == 0x27, let length = contractionLength(s, i, end, ignoringCase: true) {
        stop = i &+ length
      } else if c == letter {
        stop = runEnd(classes, i, end, of: letter)
      } else if c != newline && c != number && i &+ 1 < end && classes[i &+ 1] == letter {
        stop = runEnd(classes, i &+ 1, end, of: letter)
      } else if c == number {
        while stop < end && stop &- i < maxDigits && classes[stop] == number { stop &+= 1 }
      } else if c == other || (s[i] == 0x20 && i &+ 1 < end && classes[i &+ 1] == other) {
        stop = runEnd(classes, c == other ? i : i &+ 1, end, of: other)
        while stop < end && classes[stop] == newline { stop &+= 1 }
      } else {
        // Whitespace: `\s*[\r\n]+` up to the last CR/LF of the run, else `\s+(?!\S)|\s+`.
        var j = i
        var lastNewline = -1
        while j < end && isWhitespace(classes[j]) {
          if classes[j] == newline { lastNewline = j }
          j &+= 1
        }
        if lastNewline >= 0 {
          stop = lastNewline &+ 1
        } else {
          stop = whitespaceEnd(classes, i, end)
        }
      }
      output.append(i..<stop)
      i = stop
    }
  }
}
