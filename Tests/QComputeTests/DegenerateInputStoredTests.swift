import Testing

@testable import QCompute
@testable import QFormats

/// The degenerate inputs of `DegenerateInputTests` at 3 bits, through the pack encoder (scales
/// and offsets rounded to their stored dtype, as a reader sees them) and through the GGUF blocks.
@Suite struct DegenerateInputStoredTests {
  static let constants = DegenerateInputTests.constants

  static let threeBit: [DegenerateQuantizer] = [
    DegenerateQuantizer(name: "affine", bits: 3) { try AffineQuantizer.quantize($0, rows: $1, columns: $2, bits: $3, groupSize: $4) },
    DegenerateQuantizer(name: "symmetric", bits: 3) { try SymmetricQuantizer.quantize($0, rows: $1, columns: $2, bits: $3, groupSize: $4) },
    DegenerateQuantizer(name: "clip", bits: 3) { try ClipSearchQuantizer.quantize($0, rows: $1, columns: $2, bits: $3, groupSize: $4) },
    DegenerateQuantizer(name: "hqq", bits: 3) { try HQQQuantizer.quantize($0, rows: $1, columns: $2, bits: $3, groupSize: $4) },
  ]

  @Test(arguments: threeBit)
  func threeBitDegenerateInputsAreExact(_ quantizer: DegenerateQuantizer) throws {
    let zeros = [Float](repeating: 0, count: 4 * 64)
    #expect(try quantizer.roundTrip(zeros, rows: 4, columns: 64, groupSize: .elements(32)) == zeros)
    let constantRows = Self.constants.flatMap { [Float](repeating: $0, count: 32) }
    #expect(try quantizer.roundTrip(constantRows, rows: Self.constants.count, columns: 32, groupSize: .elements(32)) == constantRows)
    let single = Self.constants + [0.1, -7, 1e-3]
    #expect(try quantizer.roundTrip(single, rows: single.count, columns: 1, groupSize: .perChannel) == single)
    let large = (0..<64).map { Float(65504) * Float($0 - 32) / 32 }
    let result = try quantizer.roundTrip(large, rows: 1, columns: 64, groupSize: .elements(64))
    let step = Float(65504) * 2 / 7
    for (value, got) in zip(large, result) { #expect(got.isFinite && abs(got - value) <= step, "element \(value) became \(got)") }
  }

  /// Specs as qconvert writes them: f16 scales, every grid and method that quantizes in groups.
  static let specs: [PackSpec] = [2, 3, 4, 8].flatMap { bits in
    [
      PackSpec(bits: bits, groupSize: .elements(32), grid: .affine, method: .rtn),
      PackSpec(bits: bits, groupSize: .elements(32), grid: .affine, method: .clip),
      PackSpec(bits: bits, groupSize: .elements(32), grid: .affine, method: .hqq),
      PackSpec(bits: bits, groupSize: .elements(32), grid: .symmetric, method: .rtn),
    ]
  }

  func stored(_ weights: [Float], rows: Int, columns: Int, spec: PackSpec) throws -> [Float] {
    let info = TensorInfo(name: "w", dtype: .f16, shape: [rows, columns])
    return try weights.withUnsafeBufferPointer { try PackEncoder.pack($0, info: info, spec: spec, location: "test") }
      .matrix.dequantize()
  }

  /// Zeros, constant rows and one-element groups hold values an f16 scale can carry (every
  /// constant is an f16 value), so what a reader reconstructs is exact.
  @Test(arguments: specs)
  func storedDegenerateInputsAreExact(spec: PackSpec) throws {
    let zeros = [Float](repeating: 0, count: 2 * 64)
    #expect(try stored(zeros, rows: 2, columns: 64, spec: spec) == zeros)
    let constantRows = Self.constants.flatMap { [Float](repeating: $0, count: 32) }
    let restored = try stored(constantRows, rows: Self.constants.count, columns: 32, spec: spec)
    for (row, value) in Self.constants.enumerated() {
      #expect(Array(restored[row * 32..<(row + 1) * 32]) == [Float](repeating: value, count: 32), "constant \(value)")
    }
    let oneRow = (0..<32).map { Float(65504) * Float($0 - 16) / 16 }
    let restoredRow = try stored(oneRow, rows: 1, columns: 32, spec: spec)
    #expect(restoredRow.allSatisfy { $0.isFinite })
  }

  /// Zeros stay zeros in every GGUF block type; the largest f16 values stay finite.
  @Test(arguments: GGUFBlockType.allCases)
  func ggufBlocksKeepZerosAndLargestF16Finite(type: GGUFBlockType) throws {
    let zeros = [Float](repeating: 0, count: 256)
    let encoded = try zeros.withUnsafeBufferPointer { try GGUFBlocks.encode($0, type: type) }
    #expect(try encoded.withUnsafeBytes { try GGUFBlocks.decode($0, type: type) } == zeros)
    let large = (0..<256).map { Float(65504) * Float($0 - 128) / 128 }
    let bytes = try large.withUnsafeBufferPointer { try GGUFBlocks.encode($0, type: type) }
    #expect(try bytes.withUnsafeBytes { try GGUFBlocks.decode($0, type: type) }.allSatisfy { $0.isFinite })
  }

  /// Q8_0 on a constant block, by llama.cpp's `quantize_row_q8_0_ref`: d = amax / 127 stored as
  /// f16, codes round(x / d) = 127, so the value comes back as f16(c / 127) * 127. The f16
  /// subnormal 2^-24 divided by 127 is below f16's range and comes back as zero.
  @Test func q8ConstantBlocksFollowTheReference() throws {
    for value in Self.constants {
      let block = [Float](repeating: value, count: 32)
      let bytes = try block.withUnsafeBufferPointer { try GGUFBlocks.encode($0, type: .q8_0) }
      let got = try bytes.withUnsafeBytes { try GGUFBlocks.decode($0, type: .q8_0) }
      let d = Float(Float16(abs(value) / 127))
      let expected = value == 0 || d == 0 ? 0 : d * (value / (abs(value) / 127)).rounded()
      #expect(got == [Float](repeating: expected, count: 32), "constant \(value)")
    }
  }
}
