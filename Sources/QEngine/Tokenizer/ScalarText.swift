/// Text decoded once into scalars, their regex classes and UTF-8 offsets, so the
/// pre-tokenizer scanners work on plain arrays instead of `String` indices.
struct ScalarText {
  /// Classes of the pre-tokenizer regexes: `\p{L}`, `\p{N}`, `\s` other than CR/LF, CR/LF, and the rest.
  static let letter: UInt8 = 0
  static let number: UInt8 = 1
  static let space: UInt8 = 2
  static let newline: UInt8 = 3
  static let other: UInt8 = 4

  var scalars: [UInt32] = []
  var classes: [UInt8] = []
  /// UTF-8 offset of each scalar, plus one past the end.
  var byteOffsets: [Int32] = []
  var utf8: [UInt8] = []

  init(_ text: String) {
    utf8 = Array(text.utf8)
    scalars.reserveCapacity(utf8.count)
    classes.reserveCapacity(utf8.count)
    byteOffsets.reserveCapacity(utf8.count + 1)
    var offset: Int32 = 0
    for scalar in text.unicodeScalars {
      scalars.append(scalar.value)
      classes.append(Self.classify(scalar))
      byteOffsets.append(offset)
      offset &+= Int32(UTF8.width(scalar))
    }
    byteOffsets.append(offset)
  }

  static let asciiClasses: [UInt8] = (0..<128).map { value in
    let scalar = Unicode.Scalar(UInt8(value))
    if value == 0x0A || value == 0x0D { return newline }
    return classifySlow(scalar)
  }

  @inline(__always)
  static func classify(_ scalar: Unicode.Scalar) -> UInt8 {
    if scalar.value < 128 { return asciiClasses[Int(scalar.value)] }
    return classifySlow(scalar)
  }

  static func classifySlow(_ scalar: Unicode.Scalar) -> UInt8 {
    let properties = scalar.properties
    if properties.isWhitespace { return space }
    switch properties.generalCategory {
    case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter:
      return letter
    case .decimalNumber, .letterNumber, .otherNumber:
      return number
    default:
      return other
    }
  }
}
