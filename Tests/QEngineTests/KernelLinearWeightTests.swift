import Foundation
import QCompute
import QFormats
import Testing

@testable import QEngine

struct KernelCase: CustomTestStringConvertible, Sendable {
  var rows: Int
  var columns: Int
  var tokens: Int
  var spec: PackSpec?
  var testDescription: String { "\(rows)x\(columns), \(tokens) tokens, \(spec.map { "\($0)" } ?? "dense")" }
}

/// `Y = X Wᵀ` of both weight kinds against a naive triple loop in Double, where the quantized
/// weight's values come from `PackedCheckpoint` (the pack's own dequantizer).
@Suite struct KernelLinearWeightTests {
  static let sizes = [1, 63, 64, 65]

  static let denseCases: [KernelCase] = sizes.flatMap { rows in
    sizes.flatMap { columns in [1, 5].map { KernelCase(rows: rows, columns: columns, tokens: $0) } }
  }

  /// Every grid and zero of the pack format, at boundary row counts; columns fit the groups.
  static let quantizedCases: [KernelCase] = {
    let specs: [(PackSpec, Int)] = [
      (PackSpec(bits: 4, groupSize: 32, grid: .affine, method: .rtn), 64),
      (PackSpec(bits: 2, groupSize: .perChannel, grid: .affine, method: .rtn, scaleDType: .f32), 65),
      (PackSpec(bits: 3, groupSize: .perChannel, grid: .affine, method: .rtn, scaleDType: .bf16), 63),
      (PackSpec(bits: 8, groupSize: 16, grid: .affine, method: .clip), 64),
      (PackSpec(bits: 4, groupSize: 16, grid: .affine, method: .hqq), 48),
      (PackSpec(bits: 4, groupSize: 32, grid: .symmetric, method: .rtn), 64),
      (.speedQEmbedding(), 32),
      (.speedQ(bits: 2), 32),
      (.speedQ(bits: 4), 128),
      (PackSpec(bits: 3, groupSize: 16, grid: .affine, method: .rtn), 1 * 16 + 16),
    ]
    return specs.flatMap { spec, columns in
      [1, 63, 64, 65].flatMap { rows in [1, 7].map { KernelCase(rows: rows, columns: columns, tokens: $0, spec: spec) } }
    }.filter { testCase in
      // Bilevel second-level groups must divide the number of scales.
      guard let spec = testCase.spec, spec.grid == .bilevel else { return true }
      return (testCase.rows * (testCase.columns / spec.groupSize.length(columns: testCase.columns))) % spec.scaleGroupSize == 0
    }
  }()

  static func naiveProduct(_ x: [Float], _ w: [Float], tokens: Int, rows: Int, columns: Int) -> [Double] {
    var out = [Double](repeating: 0, count: tokens * rows)
    for t in 0..<tokens {
      for r in 0..<rows {
        var sum: Double = 0
        for c in 0..<columns { sum += Double(x[t * columns + c]) * Double(w[r * columns + c]) }
        out[t * rows + r] = sum
      }
    }
    return out
  }

  static func check(_ weight: LinearWeight, values: [Float], testCase: KernelCase, tileElements: Int? = nil) throws {
    let x = LLMFixtures.values(count: testCase.tokens * testCase.columns, seed: 7)
    var y = [Float](repeating: .nan, count: testCase.tokens * testCase.rows)
    try x.withUnsafeBufferPointer { input in
      try y.withUnsafeMutableBufferPointer { output in
        if let tileElements, case .quantized(let quantized) = weight {
          try quantized.apply(input, tokens: testCase.tokens, into: output, tileElements: tileElements)
        } else {
          try weight.apply(input, tokens: testCase.tokens, into: output)
        }
      }
    }
    let expected = naiveProduct(x, values, tokens: testCase.tokens, rows: testCase.rows, columns: testCase.columns)
    for (ours, reference) in zip(y, expected) {
      #expect(abs(Double(ours) - reference) <= 1e-5 * Double(testCase.columns) * max(1, abs(reference)))
    }
  }

  @Test(arguments: denseCases)
  func denseMatchesNaiveProduct(_ testCase: KernelCase) throws {
    let w = LLMFixtures.values(count: testCase.rows * testCase.columns, seed: 11)
    try Self.check(.dense(rows: testCase.rows, columns: testCase.columns, values: w), values: w, testCase: testCase)
  }

  @Test(arguments: quantizedCases)
  func quantizedMatchesNaiveProductOfThePacksValues(_ testCase: KernelCase) throws {
    let spec = try #require(testCase.spec)
    let info = TensorInfo(name: "w", dtype: .f16, shape: [testCase.rows, testCase.columns])
    let path = try LLMFixtures.writePack([
      (info, LLMFixtures.values(count: testCase.rows * testCase.columns, seed: 13), spec)
    ])
    defer { try? FileManager.default.removeItem(atPath: path) }
    let pack = try PackedCheckpoint(wrapping: try SafetensorsFile(path: path))
    let reference = try pack.dequantizedFloats(of: "w")
    let weight = try QuantizedWeight(pack: pack, name: "w")
    // Rows rebuilt by the kernel are bit for bit the pack's dequantized values.
    #expect(weight.dequantized().map(\.bitPattern) == reference.map(\.bitPattern))
    try Self.check(.quantized(weight), values: reference, testCase: testCase)
    // Tiles of 1, 17 and all rows: the remainder tile and the two-thread split.
    for tileRows in [1, 17, testCase.rows] {
      try Self.check(.quantized(weight), values: reference, testCase: testCase, tileElements: tileRows * testCase.columns)
    }
    // An embedding lookup of the last row.
    var row = [Float](repeating: 0, count: testCase.columns)
    row.withUnsafeMutableBufferPointer { LinearWeight.quantized(weight).row(testCase.rows - 1, into: $0) }
    #expect(row == Array(reference.suffix(testCase.columns)))
  }

  @Test func rejectsBuffersOfTheWrongSize() {
    let weight = LinearWeight.dense(rows: 2, columns: 3, values: [1, 2, 3, 4, 5, 6])
    let input: [Float] = [1, 2, 3]
    var output = [Float](repeating: 0, count: 3)
    #expect(throws: DecoderError.self) {
      try input.withUnsafeBufferPointer { x in
        try output.withUnsafeMutableBufferPointer { try weight.apply(x, tokens: 1, into: $0) }
      }
    }
  }

  /// Bit unpacking against `BitPacking.unpack` (QCompute's), for every width and odd counts.
  @Test(arguments: [2, 3, 4, 8])
  func unpackMatchesBitPacking(bits: Int) throws {
    for count in [1, 7, 8, 63, 64, 65] {
      let codes = (0..<count).map { UInt8(($0 * 5 + 3) % (1 << bits)) }
      let packed = try codes.withUnsafeBufferPointer { try BitPacking.pack($0, bits: bits) }
      var ours = [UInt8](repeating: 0xFF, count: count)
      packed.withUnsafeBufferPointer { source in
        ours.withUnsafeMutableBufferPointer { QuantizedWeight.unpack(source.baseAddress!, count: count, bits: bits, into: $0.baseAddress!) }
      }
      let theirs = try packed.withUnsafeBytes { try BitPacking.unpack($0, count: count, bits: bits) }
      #expect(ours == theirs)
      #expect(ours == codes)
    }
  }
}
