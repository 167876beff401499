import Testing

@testable import QCompute

/// HQQ's per-group safeguard against round-to-nearest (our deviation from the reference).
@Suite("HQQ keeps round-to-nearest where it is better")
struct QuantizeHQQGuardTests {
  /// Heavy-tailed rows: a few outliers per group, where HQQ's lp objective trades squared error.
  static func weights(rows: Int, columns: Int) -> [Float] {
    var state: UInt64 = 12345
    return (0..<(rows * columns)).map { index in
      state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
      let uniform = Float(state >> 40) / Float(1 << 24) - 0.5
      return index % 29 == 3 ? uniform * 9 : uniform * uniform * uniform * 4
    }
  }

  static func groupErrors(_ matrix: QuantizedMatrix, _ weights: [Float]) -> [Double] {
    let restored = matrix.dequantize()
    let length = matrix.groupLength
    return stride(from: 0, to: weights.count, by: length).map { start in
      (start..<(start + length)).reduce(0.0) { sum, index in
        let difference = Double(restored[index]) - Double(weights[index])
        return sum + difference * difference
      }
    }
  }

  @Test(arguments: [2, 3, 4], [32, 64, 128])
  func neverWorseThanEitherPerGroup(bits: Int, group: Int) throws {
    let rows = 8
    let columns = 256
    let weights = Self.weights(rows: rows, columns: columns)
    var plain = HQQQuantizer.Options()
    plain.keepsBetterRoundToNearest = false
    let (guarded, unguarded, rounded) = try weights.withUnsafeBufferPointer { buffer in
      (
        try HQQQuantizer.quantize(buffer, rows: rows, columns: columns, bits: bits, groupSize: .elements(group)),
        try HQQQuantizer.quantize(
          buffer, rows: rows, columns: columns, bits: bits, groupSize: .elements(group), options: plain),
        try AffineQuantizer.quantize(buffer, rows: rows, columns: columns, bits: bits, groupSize: .elements(group))
      )
    }
    let guardedErrors = Self.groupErrors(guarded, weights)
    let hqqErrors = Self.groupErrors(unguarded, weights)
    let roundErrors = Self.groupErrors(rounded, weights)
    for group in guardedErrors.indices {
      let best = min(hqqErrors[group], roundErrors[group])
      #expect(guardedErrors[group] <= best * (1 + 1e-5) + 1e-12, "group \(group)")
    }
    // The choice is per group: the codes are HQQ's or round-to-nearest's, never a mixture.
    let length = group
    for start in stride(from: 0, to: weights.count, by: length) {
      let codes = guarded.codes[start..<(start + length)]
      #expect(
        codes == unguarded.codes[start..<(start + length)]
          || codes == rounded.codes[start..<(start + length)], "group at \(start)")
    }
  }

  @Test func bothSolutionsOccurAtTwoBits() throws {
    let weights = Self.weights(rows: 16, columns: 256)
    var plain = HQQQuantizer.Options()
    plain.keepsBetterRoundToNearest = false
    let (guarded, unguarded) = try weights.withUnsafeBufferPointer { buffer in
      (
        try HQQQuantizer.quantize(buffer, rows: 16, columns: 256, bits: 2, groupSize: 64),
        try HQQQuantizer.quantize(buffer, rows: 16, columns: 256, bits: 2, groupSize: 64, options: plain)
      )
    }
    let kept = zip(guarded.offsets, unguarded.offsets).filter { $0 == $1 }.count
    #expect(kept > 0 && kept < guarded.offsets.count, "\(kept) of \(guarded.offsets.count) groups kept HQQ's zero")
  }
}
