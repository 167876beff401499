import CKernels
import Foundation
import Testing

@testable import QEngine

/// 16-bit weights kept half: widening against Swift's own `Float16` and the BF16 bit layout,
/// and every product against a Double sum of the widened weights. Widening is exact, so the only
/// difference from the Float32 path on the widened weights is the order of summation, bounded by
/// `(n + 2) * 2^-24 * sum |w x|` for `n` columns.
@Suite struct KernelHalfWeightTests {
  static let columnCounts = [0, 1, 7, 8, 15, 16, 17, 31, 32, 33, 63, 64, 65, 576]

  struct Generator: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
      state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
      return state
    }
  }

  static func widenedReference(_ bits: UInt16, bf16: Bool) -> Float {
    bf16 ? Float(bitPattern: UInt32(bits) << 16) : Float(Float16(bitPattern: bits))
  }

  /// Random 16-bit weights in [-2, 2] (normal and a few subnormal halves).
  static func weights(_ count: Int, bf16: Bool, seed: UInt64) -> [UInt16] {
    var generator = Generator(state: seed)
    return (0..<count).map { index in
      let value = Float.random(in: -2...2, using: &generator) * (index % 97 == 5 ? 1e-6 : 1)
      return bf16 ? UInt16(value.bitPattern >> 16) : Float16(value).bitPattern
    }
  }

  @Test(arguments: [false, true])
  func wideningIsExactForEveryBitPattern(bf16: Bool) {
    let all = (0...UInt16.max).map { $0 }
    var widened = [Float](repeating: 0, count: all.count)
    all.withUnsafeBufferPointer { source in
      widened.withUnsafeMutableBufferPointer { qk_half_to_float(source.baseAddress!, $0.baseAddress!, all.count, bf16 ? 1 : 0) }
    }
    for (bits, value) in zip(all, widened) {
      let expected = Self.widenedReference(bits, bf16: bf16)
      if expected.isNaN {
        #expect(value.isNaN, "\(bits)")
      } else {
        #expect(value.bitPattern == expected.bitPattern, "\(bits): \(value) against \(expected)")
      }
    }
  }

  /// The vector and scalar row products against a Double sum, at every boundary of their
  /// 16- and 8-wide steps, with 1 to 8 tokens and odd and even row counts.
  @Test(arguments: [false, true])
  func rowProductsMatchDouble(bf16: Bool) {
    for columns in Self.columnCounts {
      for (rows, tokens) in [(1, 1), (2, 3), (17, 8)] {
        let weights = Self.weights(rows * columns, bf16: bf16, seed: UInt64(columns * 7 + rows))
        var generator = Generator(state: UInt64(columns + 1000 * tokens))
        let input = (0..<(tokens * columns)).map { _ in Float.random(in: -2...2, using: &generator) }
        for scalar in [false, true] {
          var output = [Float](repeating: .nan, count: tokens * rows)
          weights.withUnsafeBufferPointer { w in
            input.withUnsafeBufferPointer { x in
              output.withUnsafeMutableBufferPointer { y in
                let dot = scalar ? qk_half_rows_dot_scalar : qk_half_rows_dot
                dot(w.baseAddress, bf16 ? 1 : 0, columns, 0, rows, x.baseAddress, tokens, y.baseAddress, rows)
              }
            }
          }
          for token in 0..<tokens {
            for row in 0..<rows {
              var sum: Double = 0
              var magnitude: Double = 0
              for column in 0..<columns {
                let product = Double(Self.widenedReference(weights[row * columns + column], bf16: bf16))
                  * Double(input[token * columns + column])
                sum += product
                magnitude += abs(product)
              }
              let bound = Double(columns + 2) * 0x1p-24 * magnitude
              #expect(
                abs(Double(output[token * rows + row]) - sum) <= bound,
                "\(scalar ? "scalar" : "vector") \(rows)x\(columns), token \(token), row \(row)")
            }
          }
        }
      }
    }
  }

  /// `LinearWeight.half` through the few-token product and through tiles equals the Float32
  /// weight of the widened values within the summation bound; its rows and dense copy are exact.
  @Test(arguments: [1, 8, 9, 40])
  func linearWeightMatchesWidenedDenseWeight(tokens: Int) throws {
    for bf16 in [false, true] {
      let (rows, columns) = (70, 65)
      let weight = try HalfWeight(
        rows: rows, columns: columns, format: bf16 ? .bf16 : .f16,
        values: Self.weights(rows * columns, bf16: bf16, seed: 99))
      let widened = weight.values.map { Self.widenedReference($0, bf16: bf16) }
      #expect(LinearWeight.half(weight).denseValues().map(\.bitPattern) == widened.map(\.bitPattern))
      var row = [Float](repeating: .nan, count: columns)
      row.withUnsafeMutableBufferPointer { LinearWeight.half(weight).row(69, into: $0) }
      #expect(row.map(\.bitPattern) == widened[(69 * columns)...].map(\.bitPattern))
      #expect(LinearWeight.half(weight).residentBytes == 2 * rows * columns)

      var generator = Generator(state: UInt64(tokens))
      let input = (0..<(tokens * columns)).map { _ in Float.random(in: -2...2, using: &generator) }
      var ours = [Float](repeating: .nan, count: tokens * rows)
      var tiled = ours
      var reference = ours
      try input.withUnsafeBufferPointer { x in
        try ours.withUnsafeMutableBufferPointer { try LinearWeight.half(weight).apply(x, tokens: tokens, into: $0) }
        // Tiles of 4 rows: many tiles and a short last one.
        try tiled.withUnsafeMutableBufferPointer {
          try weight.apply(x, tokens: tokens, into: $0, tileElements: 4 * columns)
        }
        try reference.withUnsafeMutableBufferPointer {
          try LinearWeight.dense(rows: rows, columns: columns, values: widened).apply(x, tokens: tokens, into: $0)
        }
      }
      for token in 0..<tokens {
        for r in 0..<rows {
          var magnitude: Double = 0
          for c in 0..<columns { magnitude += abs(Double(widened[r * columns + c]) * Double(input[token * columns + c])) }
          let bound = 2 * Double(columns + 2) * 0x1p-24 * magnitude
          let index = token * rows + r
          #expect(abs(Double(ours[index]) - Double(reference[index])) <= bound, "token \(token), row \(r)")
          #expect(abs(Double(tiled[index]) - Double(reference[index])) <= bound, "tiled: token \(token), row \(r)")
        }
      }
    }
  }

  @Test func mismatchedValuesAreAnError() {
    #expect(throws: DecoderError.self) {
      try HalfWeight(rows: 2, columns: 3, format: .f16, values: [0, 0, 0, 0, 0])
    }
  }
}
