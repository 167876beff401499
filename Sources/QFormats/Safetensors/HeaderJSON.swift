/// A JSON value as the safetensors header parser sees it.
///
/// Objects keep their keys in file order; integers that fit in `Int` are kept exactly, and any
/// other number keeps its text so messages can quote it.
enum HeaderJSON {
  case object([HeaderJSONMember])
  case array([HeaderJSON])
  case string(String)
  case integer(Int)
  case otherNumber(String)
  case bool(Bool)
  case null

  /// A word for messages: "a string", "an array", …
  var kindDescription: String {
    switch self {
    case .object: "an object"
    case .array: "an array"
    case .string: "a string"
    case .integer, .otherNumber: "a number"
    case .bool: "a boolean"
    case .null: "null"
    }
  }
}

/// One key and value of a JSON object.
struct HeaderJSONMember {
  var key: String
  var value: HeaderJSON
}

/// Why the header did not parse, and where.
struct HeaderJSONError: Error {
  enum Kind { case syntax(String), duplicateKey(String) }
  var offset: Int
  var kind: Kind
}

/// A strict RFC 8259 parser that rejects duplicate keys, which Foundation's parser and the
/// reference reader silently collapse.
struct HeaderJSONParser {
  private let bytes: UnsafeRawBufferPointer
  private var position = 0
  private var depth = 0
  private var rejectsDuplicateKeys = true
  private static let maximumDepth = 64

  /// Parses exactly one value surrounded by optional whitespace.
  static func parse(_ bytes: UnsafeRawBufferPointer) throws(HeaderJSONError) -> HeaderJSON {
    var parser = HeaderJSONParser(bytes: bytes)
    parser.skipWhitespace()
    let value = try parser.parseValue()
    parser.skipWhitespace()
    if parser.position != bytes.count {
      throw parser.error("unexpected '\(parser.printable(parser.bytes[parser.position]))' after the value")
    }
    return value
  }

  private init(bytes: UnsafeRawBufferPointer) { self.bytes = bytes }

  /// The members of the object reached from the root by the keys of `path`, each key as
  /// written (keys equal only canonically stay apart, and repeated keys are all kept), or nil
  /// when some key is absent or its value is not an object. Values off the path are skipped.
  static func members(
    at path: [String], in bytes: UnsafeRawBufferPointer
  ) throws(HeaderJSONError) -> [HeaderJSONMember]? {
    var parser = HeaderJSONParser(bytes: bytes)
    parser.rejectsDuplicateKeys = false
    for key in path {
      guard try parser.enterMember(named: key) else { return nil }
    }
    parser.skipWhitespace()
    guard parser.position < bytes.count else { throw parser.error("unexpected end of the header") }
    guard bytes[parser.position] == UInt8(ascii: "{"), case .object(let members) = try parser.parseValue()
    else { return nil }
    return members
  }

  /// Moves to the value of the member `key` of the object here; false when there is none.
  private mutating func enterMember(named key: String) throws(HeaderJSONError) -> Bool {
    skipWhitespace()
    guard position < bytes.count else { throw error("unexpected end of the header") }
    guard bytes[position] == UInt8(ascii: "{") else { return false }
    position += 1
    while true {
      skipWhitespace()
      guard position < bytes.count else { throw error("unexpected end of the header") }
      if bytes[position] == UInt8(ascii: "}") { return false }
      guard bytes[position] == UInt8(ascii: "\"") else { throw error("expected a quoted key") }
      let name = try parseString()
      skipWhitespace()
      guard position < bytes.count, bytes[position] == UInt8(ascii: ":") else {
        throw error("expected ':' after a key")
      }
      position += 1
      if name.utf8.elementsEqual(key.utf8) { return true }
      try skipValue()
      skipWhitespace()
      guard position < bytes.count else { throw error("unexpected end of the header") }
      if bytes[position] == UInt8(ascii: ",") { position += 1 }
    }
  }

  /// Steps over one value without building it: strings and brackets are matched, scalars parsed.
  private mutating func skipValue() throws(HeaderJSONError) {
    skipWhitespace()
    guard position < bytes.count else { throw error("unexpected end of the header") }
    let first = bytes[position]
    guard first == UInt8(ascii: "{") || first == UInt8(ascii: "[") else {
      if first == UInt8(ascii: "\"") { try skipString() } else { _ = try parseValue() }
      return
    }
    var open = 0
    while position < bytes.count {
      switch bytes[position] {
      case UInt8(ascii: "\""):
        try skipString()
        continue
      case UInt8(ascii: "{"), UInt8(ascii: "["):
        open += 1
      case UInt8(ascii: "}"), UInt8(ascii: "]"):
        open -= 1
        if open == 0 {
          position += 1
          return
        }
      default: break
      }
      position += 1
    }
    throw error("unexpected end of the header")
  }

  private mutating func skipString() throws(HeaderJSONError) {
    position += 1
    while position < bytes.count {
      switch bytes[position] {
      case UInt8(ascii: "\\"): position += 2
      case UInt8(ascii: "\""):
        position += 1
        return
      default: position += 1
      }
    }
    throw error("unterminated string")
  }

  private func error(_ reason: String) -> HeaderJSONError {
    HeaderJSONError(offset: position, kind: .syntax(reason))
  }

  private func printable(_ byte: UInt8) -> String {
    (0x20..<0x7F).contains(byte) ? String(UnicodeScalar(byte)) : "\\x" + String(byte, radix: 16)
  }

  private mutating func skipWhitespace() {
    while position < bytes.count {
      switch bytes[position] {
      case 0x20, 0x09, 0x0A, 0x0D: position &+= 1
      default: return
      }
    }
  }

  private mutating func expect(_ literal: StaticString, _ value: HeaderJSON) throws(HeaderJSONError) -> HeaderJSON {
    let count = literal.utf8CodeUnitCount
    guard position + count <= bytes.count else { throw error("unexpected end of the header") }
    for i in 0..<count where bytes[position + i] != literal.utf8Start[i] {
      throw error("unexpected '\(printable(bytes[position]))'")
    }
    position += count
    return value
  }

  private mutating func parseValue() throws(HeaderJSONError) -> HeaderJSON {
    guard position < bytes.count else { throw error("unexpected end of the header") }
    switch bytes[position] {
    case UInt8(ascii: "{"): return try parseObject()
    case UInt8(ascii: "["): return try parseArray()
    case UInt8(ascii: "\""): return .string(try parseString())
    case UInt8(ascii: "t"): return try expect("true", .bool(true))
    case UInt8(ascii: "f"): return try expect("false", .bool(false))
    case UInt8(ascii: "n"): return try expect("null", .null)
    case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return try parseNumber()
    case let byte: throw error("unexpected '\(printable(byte))'")
    }
  }

  private mutating func enterContainer() throws(HeaderJSONError) {
    depth += 1
    if depth > Self.maximumDepth { throw error("nesting deeper than \(Self.maximumDepth)") }
  }

  private mutating func parseObject() throws(HeaderJSONError) -> HeaderJSON {
    try enterContainer()
    position += 1
    var members: [HeaderJSONMember] = []
    var seen = Set<String>()
    skipWhitespace()
    if position < bytes.count, bytes[position] == UInt8(ascii: "}") {
      position += 1
      depth -= 1
      return .object(members)
    }
    while true {
      skipWhitespace()
      guard position < bytes.count, bytes[position] == UInt8(ascii: "\"") else {
        throw error(position < bytes.count ? "expected a quoted key" : "unexpected end of the header")
      }
      let keyOffset = position
      let key = try parseString()
      // Small objects (every tensor entry) are checked by a scan, large ones by a set.
      let duplicate: Bool
      if members.count < 16 {
        duplicate = members.contains { $0.key == key }
        if !duplicate && members.count == 15 { seen = Set(members.map(\.key) + [key]) }
      } else {
        duplicate = !seen.insert(key).inserted
      }
      if duplicate && rejectsDuplicateKeys {
        throw HeaderJSONError(offset: keyOffset, kind: .duplicateKey(key))
      }
      skipWhitespace()
      guard position < bytes.count, bytes[position] == UInt8(ascii: ":") else {
        throw error("expected ':' after a key")
      }
      position += 1
      skipWhitespace()
      members.append(HeaderJSONMember(key: key, value: try parseValue()))
      skipWhitespace()
      guard position < bytes.count else { throw error("unexpected end of the header") }
      if bytes[position] == UInt8(ascii: ",") {
        position += 1
      } else if bytes[position] == UInt8(ascii: "}") {
        position += 1
        depth -= 1
        return .object(members)
      } else {
        throw error("expected ',' or '}'")
      }
    }
  }

  private mutating func parseArray() throws(HeaderJSONError) -> HeaderJSON {
    try enterContainer()
    position += 1
    var elements: [HeaderJSON] = []
    skipWhitespace()
    if position < bytes.count, bytes[position] == UInt8(ascii: "]") {
      position += 1
      depth -= 1
      return .array(elements)
    }
    while true {
      skipWhitespace()
      elements.append(try parseValue())
      skipWhitespace()
      guard position < bytes.count else { throw error("unexpected end of the header") }
      if bytes[position] == UInt8(ascii: ",") {
        position += 1
      } else if bytes[position] == UInt8(ascii: "]") {
        position += 1
        depth -= 1
        return .array(elements)
      } else {
        throw error("expected ',' or ']'")
      }
    }
  }

  private mutating func parseString() throws(HeaderJSONError) -> String {
    position += 1
    let start = position
    // Fast path: no escapes.
    while position < bytes.count {
      let byte = bytes[position]
      if byte == UInt8(ascii: "\"") {
        let text = String(decoding: UnsafeRawBufferPointer(rebasing: bytes[start..<position]), as: UTF8.self)
        position += 1
        return text
      }
      if byte == UInt8(ascii: "\\") { break }
      if byte < 0x20 { throw error("control character in a string") }
      position += 1
    }
    var scratch = Array(bytes[start..<position])
    while position < bytes.count {
      let byte = bytes[position]
      if byte == UInt8(ascii: "\"") {
        position += 1
        return String(decoding: scratch, as: UTF8.self)
      }
      if byte < 0x20 { throw error("control character in a string") }
      if byte != UInt8(ascii: "\\") {
        scratch.append(byte)
        position += 1
        continue
      }
      position += 1
      guard position < bytes.count else { break }
      let escape = bytes[position]
      position += 1
      switch escape {
      case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): scratch.append(escape)
      case UInt8(ascii: "b"): scratch.append(0x08)
      case UInt8(ascii: "f"): scratch.append(0x0C)
      case UInt8(ascii: "n"): scratch.append(0x0A)
      case UInt8(ascii: "r"): scratch.append(0x0D)
      case UInt8(ascii: "t"): scratch.append(0x09)
      case UInt8(ascii: "u"):
        var scalar = try parseHex4()
        if (0xD800..<0xDC00).contains(scalar) {
          guard position + 1 < bytes.count, bytes[position] == UInt8(ascii: "\\"),
            bytes[position + 1] == UInt8(ascii: "u")
          else { throw error("unpaired surrogate in a string") }
          position += 2
          let low = try parseHex4()
          guard (0xDC00..<0xE000).contains(low) else { throw error("unpaired surrogate in a string") }
          scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
        } else if (0xDC00..<0xE000).contains(scalar) {
          throw error("unpaired surrogate in a string")
        }
        guard let unicode = Unicode.Scalar(scalar) else { throw error("invalid \\u escape") }
        scratch.append(contentsOf: String(Character(unicode)).utf8)
      default:
        throw error("invalid escape '\\\(printable(escape))'")
      }
    }
    throw error("unterminated string")
  }

  private mutating func parseHex4() throws(HeaderJSONError) -> UInt32 {
    guard position + 4 <= bytes.count else { throw error("unexpected end of the header") }
    var value: UInt32 = 0
    for _ in 0..<4 {
      let byte = bytes[position]
      let digit: UInt32
      switch byte {
      case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = UInt32(byte - 48)
      case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = UInt32(byte - 87)
      case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = UInt32(byte - 55)
      default: throw error("invalid \\u escape")
      }
      value = value << 4 | digit
      position += 1
    }
    return value
  }

  private mutating func parseNumber() throws(HeaderJSONError) -> HeaderJSON {
    let start = position
    var negative = false
    if bytes[position] == UInt8(ascii: "-") {
      negative = true
      position += 1
    }
    func isDigit(_ i: Int) -> Bool {
      i < bytes.count && (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[i])
    }
    guard isDigit(position) else { throw error("invalid number") }
    let digitsStart = position
    if bytes[position] == UInt8(ascii: "0") {
      position += 1
      if isDigit(position) { throw error("number with a leading zero") }
    } else {
      while isDigit(position) { position += 1 }
    }
    let digitsEnd = position
    var isInteger = true
    if position < bytes.count, bytes[position] == UInt8(ascii: ".") {
      isInteger = false
      position += 1
      guard isDigit(position) else { throw error("invalid number") }
      while isDigit(position) { position += 1 }
    }
    if position < bytes.count, bytes[position] | 0x20 == UInt8(ascii: "e") {
      isInteger = false
      position += 1
      if position < bytes.count, bytes[position] == UInt8(ascii: "+") || bytes[position] == UInt8(ascii: "-") {
        position += 1
      }
      guard isDigit(position) else { throw error("invalid number") }
      while isDigit(position) { position += 1 }
    }
    let text = String(decoding: UnsafeRawBufferPointer(rebasing: bytes[start..<position]), as: UTF8.self)
    guard isInteger else { return .otherNumber(text) }
    var magnitude = 0
    for i in digitsStart..<digitsEnd {
      let (times10, overflow1) = magnitude.multipliedReportingOverflow(by: 10)
      let (sum, overflow2) = times10.addingReportingOverflow(Int(bytes[i] - 48))
      if overflow1 || overflow2 { return .otherNumber(text) }
      magnitude = sum
    }
    return .integer(negative ? -magnitude : magnitude)
  }
}
