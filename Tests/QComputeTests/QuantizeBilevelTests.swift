import Foundation
import Testing

@testable import QCompute

/// Hand-worked 3 x 32 example, b = 2, g = 16, G = 3, so each second-level chunk is one input
/// group across the three rows (group-index-major order). Values are chosen so every step is
/// exact in binary floating point, with ties that only half-to-even rounding resolves as listed.
@Suite("SPEED-Q bilevel grid")
struct QuantizeBilevelTests {
  static func filled(_ head: [Float], with fill: Float) -> [Float] {
    head + [Float](repeating: fill, count: 16 - head.count)
  }

  // Row 0, group 0: min 0, max 3 -> s = 1, z = 0.
  // Row 1, group 0: min -1.9375, max 3.875 -> s = 5.8125 / 3 = 1.9375, z = rint(1) = 1.
  // Row 2, group 0: min -1.53125, max 3.0625 -> s = 1.53125, z = 1.
  // Chunk 0 scales {1, 1.9375, 1.53125}: S2 = 0.9375 / 15 = 0.0625, Z2 = -16;
  //   qs = rint(s / S2 + Z2) = {0, 15, rint(8.5) = 8}; s^ = S2 (qs - Z2) = {1, 1.9375, 1.5}.
  // Every group 1: min 0, max 1.5 -> s = 0.5, z = 0; the chunk's scales are all equal, so the
  //   reference's degenerate branch uses smin = -1, smax = 1: S2 = 2/15, Z2 = 7.5,
  //   qs = rint(0.5 * 7.5 + 7.5) = rint(11.25) = 11, s^ = (2/15)(11 - 7.5) = 7/15.
  static let weights: [Float] =
    filled([0, 3, 1.4, 1.6, 0.5, 2.5, 1.5], with: 1)
    + filled([0, 1.5, 1.0, 0.2, 0.3], with: 0)
    + filled([-1.9375, 3.875, 0.96875, 2.90625, -0.96875, 0], with: 0)
    + filled([1.5, 0, 0.3, 1.0, 0.2], with: 0.75)
    + filled([-1.53125, 3.0625, 0.75, 2.25, -0.75, 0], with: 0)
    + filled([0, 1.5], with: 1.2)

  // q = rint(w / s^ + z), clamped to 0...3.
  static let expectedCodes: [UInt8] =
    [0, 3, 1, 2, 0, 2, 2] + [UInt8](repeating: 1, count: 9)  // 0.5 -> 0 and 2.5 -> 2 (even)
    + [0, 3, 2, 0, 1] + [UInt8](repeating: 0, count: 11)  // w / (7/15)
    + [0, 3, 2, 2, 0, 1] + [UInt8](repeating: 1, count: 10)  // 1.5 -> 2, 2.5 -> 2, 0.5 -> 0
    + [3, 0, 1, 2, 0] + [UInt8](repeating: 2, count: 11)  // 0.75 / (7/15) = 1.61 -> 2
    + [0, 3, 2, 2, 0, 1] + [UInt8](repeating: 1, count: 10)  // s^ = 1.5, not 1.53125
    + [0, 3] + [UInt8](repeating: 3, count: 14)  // 1.2 / (7/15) = 2.57 -> 3

  @Test func handWorkedExample() throws {
    let matrix = try Self.weights.withUnsafeBufferPointer {
      try BilevelQuantizer.quantize(
        $0, rows: 3, columns: 32,
        configuration: .init(bits: 2, groupSize: 16, scaleGroupSize: 3))
    }
    #expect(matrix.codes == Self.expectedCodes)
    #expect(matrix.offsets == [0, 0, 1, 0, 1, 0])
    let second = try #require(matrix.secondLevel)
    #expect(second.unquantizedScales == [1, 0.5, 1.9375, 0.5, 1.53125, 0.5])
    #expect(second.codes == [0, 15, 8, 11, 11, 11])
    #expect(second.chunkScales[0] == 0.0625 && second.chunkZeros[0] == -16)
    #expect(second.chunkScales[1].isApproximatelyEqual(to: 2.0 / 15, relativeTolerance: 1e-6))
    #expect(second.chunkZeros[1].isApproximatelyEqual(to: 7.5, relativeTolerance: 1e-6))
    #expect(matrix.scales[0] == 1 && matrix.scales[2] == 1.9375 && matrix.scales[4] == 1.5)
    for index in [1, 3, 5] {
      #expect(matrix.scales[index].isApproximatelyEqual(to: 7.0 / 15, relativeTolerance: 1e-6))
    }
    let restored = matrix.dequantize()
    // w^ = s^ (q - z): row 1 group 0 code 2 with z = 1 gives 1.9375 exactly.
    #expect(restored[32 + 2] == 1.9375)
    #expect(restored[64 + 1] == 3.0)
  }

  @Test func constantGroupUsesUnitRange() throws {
    // min == max -> min = -1, max = 1: s = 2/3, z = rint(1.5) = 2 at 2 bits.
    let weights = [Float](repeating: 0.7, count: 16)
    let matrix = try weights.withUnsafeBufferPointer {
      try BilevelQuantizer.quantize(
        $0, rows: 1, columns: 16, configuration: .init(bits: 2, groupSize: 16, scaleGroupSize: 1))
    }
    let second = try #require(matrix.secondLevel)
    #expect(second.unquantizedScales[0] == Float(2) / 3)
    #expect(matrix.offsets == [2])
  }

  @Test(arguments: [BilevelQuantizer.Configuration.w2g16g16, .w4g32g128])
  func presetsStayWithinHalfAStep(_ configuration: BilevelQuantizer.Configuration) throws {
    let rows = 128
    let columns = 256
    let weights = (0..<(rows * columns)).map { Float(sin(Double($0) * 0.731)) * 0.1 }
    let matrix = try weights.withUnsafeBufferPointer {
      try BilevelQuantizer.quantize($0, rows: rows, columns: columns, configuration: configuration)
    }
    let second = try #require(matrix.secondLevel)
    #expect(second.codes.allSatisfy { $0 < 16 })
    #expect(matrix.codes.allSatisfy { Int($0) < 1 << configuration.bits })
    let restored = matrix.dequantize()
    let groups = columns / configuration.groupSize
    var worst: Float = 0
    for index in weights.indices {
      let step = matrix.scales[(index / columns) * groups + (index % columns) / configuration.groupSize]
      worst = max(worst, abs(restored[index] - weights[index]) / step)
    }
    // The zero comes from the unquantized scale, so edges can overshoot a little past half a step.
    #expect(worst < 1.5)
  }

  @Test func rejectsScaleCountThatDoesNotSplit() {
    let weights = [Float](repeating: 0, count: 3 * 32)
    #expect(throws: QuantizeError.scaleCountNotDivisible(quantizer: "BilevelQuantizer", scales: 6, by: 4)) {
      try weights.withUnsafeBufferPointer {
        try BilevelQuantizer.quantize(
          $0, rows: 3, columns: 32, configuration: .init(bits: 2, groupSize: 16, scaleGroupSize: 4))
      }
    }
  }
}

extension Float {
  fileprivate func isApproximatelyEqual(to other: Float, relativeTolerance: Float) -> Bool {
    abs(self - other) <= relativeTolerance * max(abs(self), abs(other))
  }
}
