import Testing

@testable import QCompute

/// Every grouped quantizer on awkward shapes: per-channel rows of boundary lengths and groups of
/// 16/32/64/128 whose rows hold several groups.
@Suite("Quantizer shapes")
struct QuantizeShapeTests {
  enum Quantizer: String, CaseIterable, CustomTestStringConvertible {
    case affine, symmetric, embedding, clipSearch, hqq
    var testDescription: String { rawValue }

    func run(_ w: UnsafeBufferPointer<Float>, rows: Int, columns: Int, groupSize: GroupSize)
      throws -> QuantizedMatrix
    {
      switch self {
      case .affine:
        try AffineQuantizer.quantize(w, rows: rows, columns: columns, bits: 3, groupSize: groupSize)
      case .symmetric:
        try SymmetricQuantizer.quantize(w, rows: rows, columns: columns, bits: 3, groupSize: groupSize)
      case .embedding:
        try SymmetricQuantizer.quantize(
          w, rows: rows, columns: columns, bits: 3, groupSize: groupSize, variant: .embedding)
      case .clipSearch:
        try ClipSearchQuantizer.quantize(w, rows: rows, columns: columns, bits: 3, groupSize: groupSize)
      case .hqq:
        try HQQQuantizer.quantize(w, rows: rows, columns: columns, bits: 3, groupSize: groupSize)
      }
    }
  }

  static func weights(_ count: Int) -> [Float] {
    (0..<count).map { Float(($0 * 7919) % 211) / 105 - 1 }
  }

  @Test(arguments: Quantizer.allCases, [0, 1, 7, 8, 63, 64, 65])
  func perChannelBoundaryLengths(_ quantizer: Quantizer, columns: Int) throws {
    let rows = 3
    let w = Self.weights(rows * columns)
    let matrix = try w.withUnsafeBufferPointer {
      try quantizer.run($0, rows: rows, columns: columns, groupSize: .perChannel)
    }
    #expect(matrix.codes.count == rows * columns)
    #expect(matrix.scales.count == (columns == 0 ? 0 : rows))
    #expect(matrix.codes.allSatisfy { $0 < 8 })
    let restored = matrix.dequantize()
    for (index, (original, value)) in zip(w, restored).enumerated() {
      let step = abs(matrix.scales[index / columns])
      // Clipping, HQQ's zero shift and the symmetric grids' unused code can cost up to ~2 steps.
      #expect(abs(original - value) <= 2.5 * step + 1e-6, "element \(index)")
    }
    let packed = try matrix.packedBytes()
    #expect(packed.count == rows * ((columns * 3 + 7) / 8))
  }

  @Test(arguments: Quantizer.allCases, [16, 32, 64, 128])
  func groupedRows(_ quantizer: Quantizer, group: Int) throws {
    let rows = 2
    let columns = 256
    let w = Self.weights(rows * columns)
    let matrix = try w.withUnsafeBufferPointer {
      try quantizer.run($0, rows: rows, columns: columns, groupSize: .elements(group))
    }
    #expect(matrix.scales.count == rows * columns / group)
    #expect(matrix.groupsPerRow == columns / group)
    let packed = try matrix.packedBytes()
    let restoredCodes = try packed.withUnsafeBytes { raw in
      try (0..<rows).flatMap { row in
        try BitPacking.unpack(
          UnsafeRawBufferPointer(rebasing: raw[(row * 96)..<((row + 1) * 96)]), count: columns, bits: 3)
      }
    }
    #expect(restoredCodes == matrix.codes)
  }

  @Test(arguments: [15, 17, 31, 33, 127, 129])
  func rejectsUnsupportedGroupSizes(group: Int) {
    let w = Self.weights(2 * 256)
    #expect(throws: QuantizeError.unsupportedGroupSize(quantizer: "HQQQuantizer", groupSize: group)) {
      try w.withUnsafeBufferPointer {
        try HQQQuantizer.quantize($0, rows: 2, columns: 256, bits: 4, groupSize: .elements(group))
      }
    }
  }

  @Test func rejectsMismatchedElementCount() {
    let w = Self.weights(100)
    #expect(throws: QuantizeError.elementCountMismatch(quantizer: "AffineQuantizer", expected: 128, actual: 100)) {
      try w.withUnsafeBufferPointer {
        try AffineQuantizer.quantize($0, rows: 2, columns: 64, bits: 4, groupSize: 64)
      }
    }
  }
}
