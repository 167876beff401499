import Testing

@testable import QCompute

/// A quantizer under test, by name, so every degenerate case runs through each of them.
struct DegenerateQuantizer: CustomTestStringConvertible, Sendable {
  let name: String
  let bits: Int
  let run: @Sendable (UnsafeBufferPointer<Float>, Int, Int, Int, GroupSize) throws -> QuantizedMatrix
  var testDescription: String { "\(name) \(bits)-bit" }

  static let all: [DegenerateQuantizer] = [2, 4, 8].flatMap { bits in
    [
      DegenerateQuantizer(name: "affine", bits: bits) { try AffineQuantizer.quantize($0, rows: $1, columns: $2, bits: $3, groupSize: $4) },
      DegenerateQuantizer(name: "symmetric", bits: bits) { try SymmetricQuantizer.quantize($0, rows: $1, columns: $2, bits: $3, groupSize: $4) },
      DegenerateQuantizer(name: "clip", bits: bits) { try ClipSearchQuantizer.quantize($0, rows: $1, columns: $2, bits: $3, groupSize: $4) },
      DegenerateQuantizer(name: "hqq", bits: bits) { try HQQQuantizer.quantize($0, rows: $1, columns: $2, bits: $3, groupSize: $4) },
    ]
  }

  /// Quantizes and dequantizes `weights` as `rows` x `columns` in groups of `groupSize`.
  func roundTrip(_ weights: [Float], rows: Int, columns: Int, groupSize: GroupSize) throws -> [Float] {
    try weights.withUnsafeBufferPointer { try run($0, rows, columns, bits, groupSize) }.dequantize()
  }
}

/// Inputs a quantizer must reproduce exactly: groups with a single distinct value, where any
/// grid that contains that value (every one here does, as an edge or as zero) loses nothing.
@Suite struct DegenerateInputTests {
  /// The largest finite F16 (65504) and the smallest F16 subnormal (2^-24). Float32
  /// subnormals are left out: the MLX grid's scale floor of 1e-7 flushes them to zero.
  static let constants: [Float] = [0, 1, -3.5, 65504, -65504, 0x1p-24]

  @Test(arguments: DegenerateQuantizer.all)
  func allZeroTensorIsExact(_ quantizer: DegenerateQuantizer) throws {
    let weights = [Float](repeating: 0, count: 4 * 64)
    #expect(try quantizer.roundTrip(weights, rows: 4, columns: 64, groupSize: .elements(32)) == weights)
  }

  @Test(arguments: DegenerateQuantizer.all)
  func constantGroupsAreExact(_ quantizer: DegenerateQuantizer) throws {
    // One row per constant, each row one group of 32.
    let weights = Self.constants.flatMap { [Float](repeating: $0, count: 32) }
    let result = try quantizer.roundTrip(weights, rows: Self.constants.count, columns: 32, groupSize: .elements(32))
    for (row, value) in Self.constants.enumerated() {
      let got = Array(result[row * 32..<(row + 1) * 32])
      #expect(got == [Float](repeating: value, count: 32), "constant \(value)")
    }
  }

  @Test(arguments: DegenerateQuantizer.all)
  func groupsOfOneElementAreExact(_ quantizer: DegenerateQuantizer) throws {
    // A single column quantized per channel: every group holds one value.
    let weights = Self.constants + [0.1, -7, 1e-3]
    let result = try quantizer.roundTrip(weights, rows: weights.count, columns: 1, groupSize: .perChannel)
    for (value, got) in zip(weights, result) { #expect(got == value, "element \(value)") }
  }

  @Test(arguments: DegenerateQuantizer.all)
  func singleRowWithTwoLevelsIsExact(_ quantizer: DegenerateQuantizer) throws {
    // Zero and one value: both lie on any grid that spans them with zero as an edge.
    let weights = (0..<64).map { $0 % 3 == 0 ? Float(0) : Float(2.5) }
    let result = try quantizer.roundTrip(weights, rows: 1, columns: 64, groupSize: .elements(64))
    #expect(result == weights)
  }

  @Test(arguments: DegenerateQuantizer.all)
  func largestF16ValuesStayFinite(_ quantizer: DegenerateQuantizer) throws {
    let weights = (0..<64).map { Float(65504) * Float($0 - 32) / 32 }
    let result = try quantizer.roundTrip(weights, rows: 1, columns: 64, groupSize: .elements(64))
    #expect(result.allSatisfy { $0.isFinite })
    let step = Float(65504) * 2 / Float((1 << quantizer.bits) - 1)
    for (value, got) in zip(weights, result) { #expect(abs(got - value) <= step, "element \(value) became \(got)") }
  }

  /// SPEED-Q's bilevel grid keeps the reference's degenerate branch on purpose (its packs must
  /// match the reference): a constant group is quantized on the grid of [-1, 1], step 2 / (2^b - 1)
  /// with zero rint(1 / step), and equal second-level scales use smin = -1, smax = 1. The
  /// expected values below follow those formulas, not the quantizer.
  @Test(arguments: [2, 4, 8])
  func bilevelConstantGroupsFollowTheReference(bits: Int) throws {
    let value: Float = 0.25
    let weights = [Float](repeating: value, count: 2 * 16)
    let matrix = try weights.withUnsafeBufferPointer {
      try BilevelQuantizer.quantize(
        $0, rows: 2, columns: 16,
        configuration: .init(bits: bits, groupSize: 16, scaleGroupSize: 2))
    }
    let levels = Float((1 << bits) - 1)
    let scale = Float(2) / levels
    let zero = (1 / scale).rounded(.toNearestOrEven)
    // Both first-level scales are equal, so the chunk takes S2 = 2/15, Z2 = -(-1)/S2 = 7.5.
    let chunkScale = Float(2) / 15
    let chunkZero = (1 / chunkScale)
    let scaleCode = min(max((scale / chunkScale + chunkZero).rounded(.toNearestOrEven), 0), 15)
    let restoredScale = chunkScale * (scaleCode - chunkZero)
    let code = min(max((value / restoredScale + zero).rounded(.toNearestOrEven), 0), levels)
    let expected = restoredScale * (code - zero)
    #expect(matrix.offsets == [zero, zero])
    for (index, got) in matrix.dequantize().enumerated() {
      #expect(abs(got - expected) <= 1e-5 * abs(expected), "element \(index)")
    }
  }
}
