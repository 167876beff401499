import Testing

@testable import QCompute

/// The libm-free rounding and the vectorised affine codes against `rounded(.toNearestOrEven)`.
@Suite("Half-to-even rounding without libm")
struct QuantizeRoundingTests {
  @Test func matchesRintOnQuartersAndNearItsLimit() {
    var values: [Float] = (-1200...1200).map { Float($0) * 0.25 }
    let limit = Float(1 << 22)
    values += [limit - 0.5, limit - 1.5, -(limit - 0.5), -(limit - 2.5), 0.49999997, -0.49999997]
    values += [Float.leastNonzeroMagnitude, -Float.leastNonzeroMagnitude, 1e-30, -0.0]
    var state: UInt64 = 7
    for _ in 0..<2000 {
      state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
      values.append(Float(Int64(bitPattern: state) >> 40) / 1024)
    }
    for value in values {
      #expect(roundedToEven(value) == value.rounded(.toNearestOrEven), "\(value)")
      let lanes = roundedToEven(SIMD8<Float>(repeating: value))
      #expect(lanes[3] == value.rounded(.toNearestOrEven), "\(value)")
    }
    for code in 0...255 {
      for fraction: Float in [-0.5, -0.25, 0, 0.25, 0.5] where Float(code) + fraction >= 0 {
        let value = Float(code) + fraction
        #expect(Float(roundedToEvenBits(value) & 0x3F_FFFF) == value.rounded(.toNearestOrEven))
      }
    }
  }

  /// min -1, max 0.5 at 2 bits: step 0.5, bias -1, so quarter weights land on exact halves.
  @Test(arguments: [2, 7, 8, 9, 15, 16, 17, 63, 64, 65])
  func affineCodesRoundHalvesToEven(columns: Int) throws {
    let pattern: [Float] = [-0.75, -0.25, 0.25, -1, 0.5, 0, -0.5]
    var weights = (0..<columns).map { pattern[($0 * 5 + 2) % pattern.count] }
    weights[0] = -1
    if columns > 1 { weights[columns - 1] = 0.5 }
    let matrix = try weights.withUnsafeBufferPointer {
      try AffineQuantizer.quantize($0, rows: 1, columns: columns, bits: 2, groupSize: .perChannel)
    }
    let low = weights.min() ?? 0
    let high = weights.max() ?? 0
    let scale = (high - low) / 3
    let edgeCode = (low / scale).rounded(.toNearestOrEven)
    let step = edgeCode == 0 ? scale : low / edgeCode
    let bias = edgeCode == 0 ? 0 : low
    #expect(matrix.scales == [step])
    #expect(matrix.offsets == [bias])
    let expected = weights.map { UInt8(min(max(((($0 - bias) / step).rounded(.toNearestOrEven)), 0), 3)) }
    #expect(matrix.codes == expected)
  }
}
