import Testing

@testable import QCompute

/// A bit-at-a-time LSB-first packer, written independently of the word-wise one under test.
private func referencePack(_ codes: [UInt8], bits: Int) -> [UInt8] {
  var out = [UInt8](repeating: 0, count: (codes.count * bits + 7) / 8)
  for (index, code) in codes.enumerated() {
    for bit in 0..<bits where (code >> bit) & 1 == 1 {
      let position = index * bits + bit
      out[position / 8] |= 1 << (position % 8)
    }
  }
  return out
}

/// Deterministic codes in 0..<2^bits, so failures reproduce.
private func sampleCodes(count: Int, bits: Int, seed: UInt64) -> [UInt8] {
  var state = seed &* 0x9E37_79B9_7F4A_7C15 &+ 1
  return (0..<count).map { _ in
    state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
    return UInt8(truncatingIfNeeded: state >> 33) & UInt8((1 << bits) - 1)
  }
}

@Suite("Bit packing")
struct BitPackingTests {
  static let sizes = [0, 1, 7, 8, 9, 31, 32, 33, 63, 64, 65]

  @Test(arguments: [2, 3, 4, 5, 6, 8], sizes)
  func packMatchesBitwiseReference(bits: Int, count: Int) throws {
    let codes = sampleCodes(count: count, bits: bits, seed: UInt64(bits * 1000 + count))
    let packed = try codes.withUnsafeBufferPointer { try BitPacking.pack($0, bits: bits) }
    #expect(packed == referencePack(codes, bits: bits))
    let unpacked = try packed.withUnsafeBytes {
      try BitPacking.unpack($0, count: count, bits: bits)
    }
    #expect(unpacked == codes)
  }

  @Test(arguments: [2, 3, 4, 5, 6], [7, 8, 9, 64, 65])
  func codesWiderThanTheWidthAreMasked(bits: Int, count: Int) throws {
    let codes = sampleCodes(count: count, bits: bits, seed: UInt64(count))
    let noisy = codes.enumerated().map { $1 | UInt8(truncatingIfNeeded: ($0 * 97 + 13) << bits) }
    let packed = try noisy.withUnsafeBufferPointer { try BitPacking.pack($0, bits: bits) }
    #expect(packed == referencePack(codes, bits: bits))
  }

  @Test(arguments: [2, 3, 4, 5, 6, 8], [1, 7, 32, 33, 64, 65])
  func wordRowsAreIndependentStreams(bits: Int, columns: Int) throws {
    let rows = 3
    let codes = sampleCodes(count: rows * columns, bits: bits, seed: UInt64(columns))
    let words = try codes.withUnsafeBufferPointer {
      try BitPacking.packWords($0, rows: rows, columns: columns, bits: bits)
    }
    let wordsPerRow = (columns * bits + 31) / 32
    #expect(words.count == rows * wordsPerRow)
    for row in 0..<rows {
      var expected = referencePack(Array(codes[row * columns..<(row + 1) * columns]), bits: bits)
      expected += [UInt8](repeating: 0, count: wordsPerRow * 4 - expected.count)
      let actual = words[row * wordsPerRow..<(row + 1) * wordsPerRow].flatMap { word in
        (0..<4).map { UInt8(truncatingIfNeeded: word >> (8 * $0)) }
      }
      #expect(actual == expected, "row \(row)")
    }
    let back = try words.withUnsafeBufferPointer {
      try BitPacking.unpackWords($0, rows: rows, columns: columns, bits: bits)
    }
    #expect(back == codes)
  }

  @Test func threeBitLayoutMatchesMLXExtraction() throws {
    // MLX's extract_bits<3>: w0 = b0 & 7, w2 = (b0 >> 6) | ((b1 & 1) << 2), w5 = (b1 >> 7) | ((b2 & 3) << 1).
    let codes: [UInt8] = [1, 2, 5, 3, 4, 6, 7, 0]
    let packed = try codes.withUnsafeBufferPointer { try BitPacking.pack($0, bits: 3) }
    try #require(packed.count == 3)
    #expect(packed[0] & 7 == 1)
    #expect((packed[0] >> 6) | ((packed[1] & 1) << 2) == 5)
    #expect((packed[1] >> 7) | ((packed[2] & 3) << 1) == 6)
    #expect(packed[2] >> 5 == 0)
  }

  @Test func rejectsUnsupportedWidth() {
    #expect(throws: QuantizeError.unsupportedBits(quantizer: "BitPacking", bits: 7)) {
      try [UInt8](repeating: 0, count: 8).withUnsafeBufferPointer { try BitPacking.pack($0, bits: 7) }
    }
  }
}
