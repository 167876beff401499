/// The GPT-2 mapping between bytes and printable Unicode scalars that byte-level BPE
/// vocabularies are written in.
enum ByteLevel {
  /// The scalar standing for each byte value.
  static let scalarForByte: [Unicode.Scalar] = {
    var table = [Unicode.Scalar](repeating: " ", count: 256)
    var next: UInt32 = 256
    for byte in 0..<256 {
      let printable =
        (0x21...0x7E).contains(byte) || (0xA1...0xAC).contains(byte) || (0xAE...0xFF).contains(byte)
      if printable {
        table[byte] = Unicode.Scalar(UInt8(byte))
      } else {
        table[byte] = Unicode.Scalar(next) ?? " "
        next &+= 1
      }
    }
    return table
  }()

  /// The byte each mapped scalar stands for.
  static let byteForScalar: [UInt32: UInt8] = {
    var map: [UInt32: UInt8] = [:]
    for (byte, scalar) in scalarForByte.enumerated() { map[scalar.value] = UInt8(byte) }
    return map
  }()

  /// The vocabulary spelling of raw bytes.
  static func encode<S: Sequence<UInt8>>(_ bytes: S) -> String {
    var result = String.UnicodeScalarView()
    for byte in bytes { result.append(scalarForByte[Int(byte)]) }
    return String(result)
  }

  /// The bytes a vocabulary token stands for, or nil when some scalar is outside the mapping
  /// (added tokens written in plain text); the decoder then uses the token's own UTF-8.
  static func decode(_ token: String) -> [UInt8]? {
    var bytes: [UInt8] = []
    bytes.reserveCapacity(token.unicodeScalars.count)
    for scalar in token.unicodeScalars {
      guard let byte = byteForScalar[scalar.value] else { return nil }
      bytes.append(byte)
    }
    return bytes
  }
}
