import Foundation
import QCompute
import Testing

@testable import QEngine

struct FusedCase: CustomTestStringConvertible, Sendable {
  var bits: Int
  var rows: Int
  var columns: Int
  var groupSize: Int
  var tokens: Int
  var offsetIsBias: Bool
  var testDescription: String {
    "\(bits)-bit \(rows)x\(columns) groups of \(groupSize), \(tokens) tokens, \(offsetIsBias ? "bias" : "zero")"
  }
}

/// The fused low-bit product against a Double reference built from the codes by the formula
/// `s * q + b` or `s * (q - z)`, with codes packed LSB-first by the test itself.
@Suite struct KernelFusedProductTests {
  /// Inputs around one SIMD chunk and one usual group (1, 7, 8, 63, 64, 65), group sizes that
  /// start every chunk on a byte and sizes that do not (group size ±1).
  static let shapes: [(columns: Int, groupSize: Int)] = [
    (1, 1), (7, 7), (8, 8), (63, 63), (63, 9), (64, 64), (64, 8), (65, 65), (65, 13),
    (128, 64), (192, 64), (128, 63 + 1 + 63 + 1), (126, 63), (130, 65), (96, 32), (72, 24),
  ]

  static let cases: [FusedCase] = [2, 3, 4, 8].flatMap { bits in
    shapes.flatMap { shape in
      [(1, 1), (5, 2), (17, 8)].flatMap { rows, tokens in
        [true, false].map { bias in
          FusedCase(
            bits: bits, rows: rows, columns: shape.columns, groupSize: shape.groupSize, tokens: tokens,
            offsetIsBias: bias)
        }
      }
    }
  }

  /// Enough rows to split across threads, at the usual group of 64 and a ragged one.
  static let parallelCases: [FusedCase] = [2, 3, 4, 8].flatMap { bits in
    [(1031, 128, 64, 1), (600, 130, 65, 3), (1024, 576, 64, 8)].map { rows, columns, group, tokens in
      FusedCase(bits: bits, rows: rows, columns: columns, groupSize: group, tokens: tokens, offsetIsBias: bits != 3)
    }
  }

  /// A deterministic generator, so a failure can be replayed.
  struct Generator: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
      state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
      return state
    }
    mutating func uniform(_ range: ClosedRange<Float>) -> Float { Float.random(in: range, using: &self) }
  }

  struct Fixture {
    var weight: QuantizedWeight
    var codes: [Int]
    var scales: [Float]
    var offsets: [Float]
    var input: [Float]
  }

  static func fixture(_ testCase: FusedCase) throws -> Fixture {
    var generator = Generator(state: UInt64(testCase.bits * 1_000_003 + testCase.columns * 101 + testCase.rows))
    let groups = testCase.columns / testCase.groupSize
    let maxCode = (1 << testCase.bits) - 1
    let codes = (0..<(testCase.rows * testCase.columns)).map { _ in Int.random(in: 0...maxCode, using: &generator) }
    let scales = (0..<(testCase.rows * groups)).map { _ in generator.uniform(0.01...0.1) }
    let offsets = (0..<(testCase.rows * groups)).map { _ in
      testCase.offsetIsBias ? generator.uniform(-1...1) : generator.uniform(0...Float(maxCode))
    }
    let input = (0..<(testCase.tokens * testCase.columns)).map { _ in generator.uniform(-2...2) }
    let bytesPerRow = (testCase.columns * testCase.bits + 7) / 8
    var packed = [UInt8](repeating: 0, count: testCase.rows * bytesPerRow)
    for row in 0..<testCase.rows {
      for column in 0..<testCase.columns {
        let code = codes[row * testCase.columns + column]
        for bit in 0..<testCase.bits where code >> bit & 1 == 1 {
          let position = column * testCase.bits + bit
          packed[row * bytesPerRow + position / 8] |= UInt8(1 << (position % 8))
        }
      }
    }
    let weight = try QuantizedWeight(
      rows: testCase.rows, columns: testCase.columns, bits: testCase.bits, groupSize: testCase.groupSize,
      codes: packed, scales: scales, offsets: offsets, offsetIsBias: testCase.offsetIsBias)
    return Fixture(weight: weight, codes: codes, scales: scales, offsets: offsets, input: input)
  }

  /// `Y = X Wᵀ` in Double, and beside each output the sum of `|x s q| + |x b|` (or `|x s z|`)
  /// that bounds its rounding: the fused product sums the code and offset terms apart, so when
  /// `q` is close to `z` its error follows those terms rather than the small `|x w|`.
  static func reference(_ fixture: Fixture, _ testCase: FusedCase) -> (values: [Double], magnitudes: [Double]) {
    let groups = testCase.columns / testCase.groupSize
    var values = [Double](repeating: 0, count: testCase.tokens * testCase.rows)
    var magnitudes = values
    for token in 0..<testCase.tokens {
      for row in 0..<testCase.rows {
        var sum: Double = 0
        var magnitude: Double = 0
        for column in 0..<testCase.columns {
          let group = row * groups + column / testCase.groupSize
          let q = Double(fixture.codes[row * testCase.columns + column])
          let s = Double(fixture.scales[group])
          let o = Double(fixture.offsets[group])
          let w = testCase.offsetIsBias ? s * q + o : s * (q - o)
          let x = Double(fixture.input[token * testCase.columns + column])
          sum += w * x
          magnitude += (abs(s * q) + abs(testCase.offsetIsBias ? o : s * o)) * abs(x)
        }
        values[token * testCase.rows + row] = sum
        magnitudes[token * testCase.rows + row] = magnitude
      }
    }
    return (values, magnitudes)
  }

  static func fused(_ fixture: Fixture, _ testCase: FusedCase) -> [Float] {
    var output = [Float](repeating: .nan, count: testCase.tokens * testCase.rows)
    fixture.input.withUnsafeBufferPointer { input in
      output.withUnsafeMutableBufferPointer { fixture.weight.applyFused(input, tokens: testCase.tokens, into: $0) }
    }
    return output
  }

  static func expectClose(_ ours: [Float], _ reference: (values: [Double], magnitudes: [Double])) {
    #expect(ours.count == reference.values.count)
    for (index, value) in ours.enumerated() {
      let error = abs(Double(value) - reference.values[index])
      #expect(
        error <= 1e-5 * max(reference.magnitudes[index], 1e-30),
        "output \(index): \(value) against \(reference.values[index])")
    }
  }

  @Test(arguments: cases)
  func matchesFormula(_ testCase: FusedCase) throws {
    let fixture = try Self.fixture(testCase)
    Self.expectClose(Self.fused(fixture, testCase), Self.reference(fixture, testCase))
  }

  @Test(arguments: parallelCases)
  func matchesFormulaAcrossThreads(_ testCase: FusedCase) throws {
    let fixture = try Self.fixture(testCase)
    Self.expectClose(Self.fused(fixture, testCase), Self.reference(fixture, testCase))
  }

  /// The fused product agrees with rebuilding the rows and multiplying them through BLAS.
  @Test(arguments: cases.filter { $0.rows > 1 } + parallelCases)
  func matchesDequantizedProduct(_ testCase: FusedCase) throws {
    let fixture = try Self.fixture(testCase)
    var tiled = [Float](repeating: .nan, count: testCase.tokens * testCase.rows)
    try fixture.input.withUnsafeBufferPointer { input in
      try tiled.withUnsafeMutableBufferPointer {
        try fixture.weight.apply(input, tokens: testCase.tokens, into: $0, tileElements: 4 * testCase.columns)
      }
    }
    let reference = Self.reference(fixture, testCase)
    let fused = Self.fused(fixture, testCase)
    for index in fused.indices {
      #expect(
        abs(Double(fused[index]) - Double(tiled[index])) <= 2e-5 * max(reference.magnitudes[index], 1e-30),
        "output \(index): \(fused[index]) against \(tiled[index])")
    }
  }

  /// No input columns and no rows leave nothing to read; zero columns give zeros.
  @Test func emptyShapes() throws {
    let empty = try QuantizedWeight(
      rows: 3, columns: 0, bits: 4, groupSize: 8, codes: [], scales: [], offsets: [], offsetIsBias: true)
    var output = [Float](repeating: .nan, count: 6)
    [Float]().withUnsafeBufferPointer { input in
      output.withUnsafeMutableBufferPointer { empty.applyFused(input, tokens: 2, into: $0) }
    }
    #expect(output == [Float](repeating: 0, count: 6))
  }

  /// `LinearWeight.apply` sends a decoding step through the fused product and a long prompt
  /// through tiles; both give the formula's result.
  @Test(arguments: [1, 8, 9, 40])
  func linearWeightChoosesEitherPath(_ tokens: Int) throws {
    let testCase = FusedCase(bits: 2, rows: 70, columns: 128, groupSize: 64, tokens: tokens, offsetIsBias: true)
    let fixture = try Self.fixture(testCase)
    var output = [Float](repeating: .nan, count: tokens * testCase.rows)
    try fixture.input.withUnsafeBufferPointer { input in
      try output.withUnsafeMutableBufferPointer {
        try LinearWeight.quantized(fixture.weight).apply(input, tokens: tokens, into: $0)
      }
    }
    Self.expectClose(output, Self.reference(fixture, testCase))
  }

  /// The dense few-token product against the same sum in Double, around its 32- and 8-wide steps.
  @Test(arguments: [1, 7, 8, 31, 32, 33, 63, 64, 65, 576])
  func denseFewTokensMatchesDouble(_ columns: Int) throws {
    for (rows, tokens) in [(1, 1), (5, 2), (17, 8), (1100, 1)] {
      var generator = Generator(state: UInt64(columns * 31 + rows))
      let weights = (0..<(rows * columns)).map { _ in generator.uniform(-1...1) }
      let input = (0..<(tokens * columns)).map { _ in generator.uniform(-2...2) }
      var output = [Float](repeating: .nan, count: tokens * rows)
      try input.withUnsafeBufferPointer { x in
        try output.withUnsafeMutableBufferPointer {
          try LinearWeight.dense(rows: rows, columns: columns, values: weights).apply(x, tokens: tokens, into: $0)
        }
      }
      for token in 0..<tokens {
        for row in 0..<rows {
          var sum: Double = 0
          var magnitude: Double = 0
          for column in 0..<columns {
            let product = Double(weights[row * columns + column]) * Double(input[token * columns + column])
            sum += product
            magnitude += abs(product)
          }
          let value = Double(output[token * rows + row])
          #expect(abs(value - sum) <= 1e-5 * max(magnitude, 1e-30), "\(rows)x\(columns), token \(token), row \(row)")
        }
      }
    }
  }

  /// Weights sharing one input (query, key and value) in one parallel region give, bit for bit,
  /// what each gives alone, at every width and with rows both below and above a thread split.
  @Test(arguments: [2, 3, 4, 8])
  func sharedRegionMatchesSeparateProducts(bits: Int) throws {
    let shapes = [(rows: 1031, bias: true), (rows: 5, bias: false), (rows: 192, bias: true)]
    let fixtures = try shapes.map { shape in
      try Self.fixture(
        FusedCase(bits: bits, rows: shape.rows, columns: 576, groupSize: 64, tokens: 3, offsetIsBias: shape.bias))
    }
    let input = fixtures[0].input
    let separate = fixtures.map { fixture in
      var output = [Float](repeating: .nan, count: 3 * fixture.weight.rows)
      input.withUnsafeBufferPointer { x in
        output.withUnsafeMutableBufferPointer { fixture.weight.applyFused(x, tokens: 3, into: $0) }
      }
      return output
    }
    var first = [Float](repeating: .nan, count: 3 * fixtures[0].weight.rows)
    var second = [Float](repeating: .nan, count: 3 * fixtures[1].weight.rows)
    var third = [Float](repeating: .nan, count: 3 * fixtures[2].weight.rows)
    try input.withUnsafeBufferPointer { x in
      try first.withUnsafeMutableBufferPointer { a in
        try second.withUnsafeMutableBufferPointer { b in
          try third.withUnsafeMutableBufferPointer { c in
            try LinearWeight.apply(
              [(.quantized(fixtures[0].weight), a), (.quantized(fixtures[1].weight), b),
               (.quantized(fixtures[2].weight), c)], to: x, tokens: 3)
          }
        }
      }
    }
    let shared = [first, second, third]
    for index in 0..<3 {
      #expect(shared[index].map(\.bitPattern) == separate[index].map(\.bitPattern))
    }
  }

}
