import CKernels
import Foundation
import Testing

@testable import QEngine

/// Low-bit codes times int8-quantized activations (`qk_lowbit_rows_dot`), vector and scalar.
///
/// The stated error: each activation is rounded within half its block's scale `d_b`
/// (`max|x| / 254` over its block of 32) and the product is that of the dequantized weights `w`
/// with the rounded activations `x̂`, so an output differs from the float product by at most
/// `sum_c |w_c| * d_b(c) / 2`, plus float rounding. Against `x̂`, the integer sums are exact and
/// only the rounding remains.
@Suite struct KernelInt8ActivationTests {
  static let shapes: [(columns: Int, groupSize: Int)] = [
    (32, 32), (64, 32), (64, 64), (96, 32), (128, 64), (160, 32), (192, 64), (256, 128), (320, 64),
    (576, 64), (1536, 64),
  ]

  static let cases: [FusedCase] = [2, 4, 8].flatMap { bits in
    shapes.flatMap { shape in
      [(1, 1), (3, 2), (17, 8)].flatMap { rows, tokens in
        [true, false].map { bias in
          FusedCase(
            bits: bits, rows: rows, columns: shape.columns, groupSize: shape.groupSize, tokens: tokens,
            offsetIsBias: bias)
        }
      }
    }
  }

  /// The activations as the kernel quantized them, back in column order: `d_b * q`.
  static func quantizedActivations(_ input: [Float], columns: Int, bits: Int) -> (values: [Double], scales: [Float], raw: [Int8]) {
    let tokens = columns == 0 ? 0 : input.count / columns
    var raw = [Int8](repeating: 0, count: input.count)
    var scales = [Float](repeating: 0, count: tokens * columns / 32)
    for token in 0..<tokens {
      input.withUnsafeBufferPointer { x in
        raw.withUnsafeMutableBufferPointer { q in
          scales.withUnsafeMutableBufferPointer { d in
                var blockSums = [Float](repeating: 0, count: columns / 32)
            qk_quantize_activations(
              x.baseAddress! + token * columns, columns, Int32(bits), q.baseAddress! + token * columns,
              d.baseAddress! + token * columns / 32, &blockSums)
          }
        }
      }
    }
    // Column c of a whole chunk (32 bytes of codes, `8 / bits` codes a byte) sits at
    // `j * 32 + k` for the k-th byte's j-th code; columns past the last whole chunk keep their place.
    let perByte = 8 / bits
    let chunk = 32 * perByte
    var values = [Double](repeating: 0, count: input.count)
    for token in 0..<tokens {
      for column in 0..<columns {
        let position: Int
        if column < columns / chunk * chunk {
          let start = column / chunk * chunk
          let byte = (column - start) / perByte
          let code = (column - start) % perByte
          position = start + code * 32 + byte
        } else {
          position = column
        }
        values[token * columns + column] =
          Double(scales[token * columns / 32 + column / 32]) * Double(raw[token * columns + position])
      }
    }
    return (values, scales, raw)
  }

  static func run(_ fixture: KernelFusedProductTests.Fixture, _ testCase: FusedCase, scalar: Bool) -> [Float] {
    var output = [Float](repeating: .nan, count: testCase.tokens * testCase.rows)
    let prepared = fixture.input.withUnsafeBufferPointer {
      fixture.weight.prepareInt8Input($0, tokens: testCase.tokens)
    }
    defer { prepared.deallocate() }
    let weight = fixture.weight
    output.withUnsafeMutableBufferPointer { y in
      if scalar {
        weight.codes.withUnsafeBufferPointer { codes in
          weight.scales.withUnsafeBufferPointer { scales in
            weight.offsets.withUnsafeBufferPointer { offsets in
              qk_lowbit_rows_dot_scalar(
                codes.baseAddress, weight.bytesPerRow, Int32(weight.bits), weight.columns, weight.groupSize,
                scales.baseAddress, offsets.baseAddress, weight.offsetIsBias ? 1 : 0, 0, weight.rows,
                prepared.quantized.base, prepared.blockScales.base, prepared.groupSums.base, testCase.tokens,
                y.baseAddress, weight.rows)
            }
          }
        }
      } else {
        weight.int8Rows(0..<weight.rows, tokens: testCase.tokens, input: prepared, into: y.baseAddress!)
      }
    }
    return output
  }

  @Test func quantizedActivationsStayWithinHalfAScale() {
    var generator = KernelFusedProductTests.Generator(state: 7)
    for bits in [2, 4, 8] {
      for columns in [32, 64, 96, 128, 160, 576] {
        var input = (0..<columns).map { _ in generator.uniform(-3...3) }
        input[0] = 0
        if columns >= 64 { for index in 32..<64 { input[index] = 0 } }  // an all-zero block
        let (values, scales, raw) = Self.quantizedActivations(input, columns: columns, bits: bits)
        for block in 0..<(columns / 32) {
          let largest = input[(block * 32)..<(block * 32 + 32)].map { abs($0) }.max()!
          #expect(abs(Double(scales[block]) - Double(largest) / 127) <= 1e-7 * Double(largest))
        }
        #expect(raw.allSatisfy { $0 >= -127 && $0 <= 127 })
        for column in 0..<columns {
          let half = Double(scales[column / 32]) / 2
          #expect(abs(values[column] - Double(input[column])) <= half * (1 + 1e-6), "\(bits)-bit column \(column)")
        }
      }
    }
  }

  @Test(arguments: cases)
  func matchesFormulaWithinTheActivationBound(_ testCase: FusedCase) throws {
    let fixture = try KernelFusedProductTests.fixture(testCase)
    let (exact, magnitudes) = KernelFusedProductTests.reference(fixture, testCase)
    let quantized = Self.quantizedActivations(fixture.input, columns: testCase.columns, bits: testCase.bits)
    let groups = testCase.columns / testCase.groupSize
    let vector = Self.run(fixture, testCase, scalar: false)
    let scalar = Self.run(fixture, testCase, scalar: true)
    for token in 0..<testCase.tokens {
      for row in 0..<testCase.rows {
        // The product with the rounded activations, and the bound on its distance from the exact one.
        var onQuantized: Double = 0
        var bound: Double = 0
        for column in 0..<testCase.columns {
          let group = row * groups + column / testCase.groupSize
          let q = Double(fixture.codes[row * testCase.columns + column])
          let s = Double(fixture.scales[group])
          let o = Double(fixture.offsets[group])
          let w = testCase.offsetIsBias ? s * q + o : s * (q - o)
          onQuantized += w * quantized.values[token * testCase.columns + column]
          bound += abs(w) * Double(quantized.scales[token * testCase.columns / 32 + column / 32]) / 2
        }
        let index = token * testCase.rows + row
        let rounding = 1e-5 * max(magnitudes[index], 1e-30)
        for (name, value) in [("vector", vector[index]), ("scalar", scalar[index])] {
          #expect(abs(Double(value) - onQuantized) <= rounding, "\(name) output \(index) on quantized x")
          #expect(abs(Double(value) - exact[index]) <= bound + rounding, "\(name) output \(index) against exact")
        }
      }
    }
  }

  /// Shapes the int8 path does not take (3-bit codes, groups not a multiple of 32, no columns)
  /// run the float path unchanged, bit for bit.
  @Test func unsupportedShapesFallBackToFloatActivations() throws {
    let cases = [
      FusedCase(bits: 3, rows: 9, columns: 64, groupSize: 32, tokens: 2, offsetIsBias: true),
      FusedCase(bits: 4, rows: 9, columns: 1, groupSize: 1, tokens: 1, offsetIsBias: true),
      FusedCase(bits: 4, rows: 9, columns: 31, groupSize: 31, tokens: 1, offsetIsBias: false),
      FusedCase(bits: 4, rows: 9, columns: 33, groupSize: 33, tokens: 3, offsetIsBias: true),
      FusedCase(bits: 2, rows: 9, columns: 63, groupSize: 63, tokens: 1, offsetIsBias: true),
      FusedCase(bits: 8, rows: 9, columns: 65, groupSize: 65, tokens: 1, offsetIsBias: false),
      FusedCase(bits: 4, rows: 9, columns: 64, groupSize: 16, tokens: 1, offsetIsBias: false),
    ]
    for testCase in cases {
      let fixture = try KernelFusedProductTests.fixture(testCase)
      var weight = fixture.weight
      weight.quantizesActivations = true
      #expect(!weight.supportsInt8Activations)
      var output = [Float](repeating: .nan, count: testCase.tokens * testCase.rows)
      try fixture.input.withUnsafeBufferPointer { x in
        try output.withUnsafeMutableBufferPointer { try LinearWeight.quantized(weight).apply(x, tokens: testCase.tokens, into: $0) }
      }
      #expect(output.map(\.bitPattern) == KernelFusedProductTests.fused(fixture, testCase).map(\.bitPattern))
    }
  }

  /// Through `LinearWeight`: a decoding step takes the int8 path, several weights in one region
  /// give what each gives alone, and a long input still goes through tiles on float activations.
  @Test func linearWeightUsesInt8ActivationsForFewTokens() throws {
    let testCase = FusedCase(bits: 4, rows: 1031, columns: 576, groupSize: 64, tokens: 3, offsetIsBias: true)
    let fixture = try KernelFusedProductTests.fixture(testCase)
    var weight = fixture.weight
    weight.quantizesActivations = true
    let other = try KernelFusedProductTests.fixture(
      FusedCase(bits: 2, rows: 70, columns: 576, groupSize: 64, tokens: 3, offsetIsBias: false))
    var second = other.weight
    second.quantizesActivations = true
    var alone = [Float](repeating: .nan, count: 3 * 1031)
    var together = alone
    var secondAlone = [Float](repeating: .nan, count: 3 * 70)
    var secondTogether = secondAlone
    try fixture.input.withUnsafeBufferPointer { x in
      try alone.withUnsafeMutableBufferPointer { try LinearWeight.quantized(weight).apply(x, tokens: 3, into: $0) }
      try secondAlone.withUnsafeMutableBufferPointer { try LinearWeight.quantized(second).apply(x, tokens: 3, into: $0) }
      try together.withUnsafeMutableBufferPointer { a in
        try secondTogether.withUnsafeMutableBufferPointer { b in
          try LinearWeight.apply([(.quantized(weight), a), (.quantized(second), b)], to: x, tokens: 3)
        }
      }
    }
    #expect(alone.map(\.bitPattern) == Self.run(fixture, testCase, scalar: false).map(\.bitPattern))
    #expect(alone.map(\.bitPattern) == together.map(\.bitPattern))
    #expect(secondAlone.map(\.bitPattern) == secondTogether.map(\.bitPattern))
    // Not the float path: int8 activations move the outputs.
    #expect(alone != KernelFusedProductTests.fused(fixture, testCase))
  }
}
