import Foundation
import QFormats
import QToolSupport
import Testing

@testable import QCompute

/// One stored setting of Fixtures/export/mlx-dequant.safetensors.
struct MLXDequantCase: Sendable, CustomTestStringConvertible {
  let key: String
  let scaleType: DType
  let bits: Int
  let group: Int
  var testDescription: String { key }

  static let all: [MLXDequantCase] = [(DType.f16, "f16"), (.bf16, "bf16"), (.f32, "f32")].flatMap { dtype, label in
    [2, 3, 4, 8].flatMap { bits in
      [32, 64, 128].map { MLXDequantCase(key: "\(label)-b\(bits)-g\($0)", scaleType: dtype, bits: bits, group: $0) }
    }
  }
}

@Suite("Methods on MLX's affine grid")
struct ExportMLXMethodTests {
  static let fixture = ExportFixtures.path("export", "mlx-dequant.safetensors")

  /// `MLXAffineGrid.dequantize` is mlx.core.dequantize bit for bit: codes times scale rounded to
  /// the scale's dtype, plus the bias rounded again, for every dtype, bit width and group size.
  @Test(arguments: MLXDequantCase.all)
  func dequantizesAsMLXDoes(_ setting: MLXDequantCase) throws {
    let file = try SafetensorsFile(path: Self.fixture)
    let codes = try ExportFixtures.bytes(of: setting.key + "/codes", in: file)
    let info = try #require(file.info(named: setting.key + "/codes"))
    let matrix = QuantizedMatrix(
      method: .affine, bits: setting.bits, groupSize: .elements(setting.group), rows: info.shape[0],
      columns: info.shape[1], codes: codes, scales: try file.floats(of: setting.key + "/scales"),
      offsets: try file.floats(of: setting.key + "/biases"), secondLevel: nil)
    let expected = try file.floats(of: setting.key + "/dequantized")
    let ours = MLXAffineGrid.dequantize(matrix, scaleType: setting.scaleType)
    #expect(ours.map(\Float.bitPattern) == expected.map(\Float.bitPattern))
  }

  /// A deterministic matrix with outliers, rows of 3 groups.
  static func weights(rows: Int, columns: Int) -> [Float] {
    (0..<(rows * columns)).map { index -> Float in
      let phase = Double(index)
      let wave = Float(sin(phase * 0.37) + 0.3 * cos(phase * 1.91))
      return index % 53 == 0 ? wave * 6 : wave * 0.05
    }
  }

  /// Clip and HQQ decide codes on the grid MLX stores: each code is the nearest of its
  /// neighbours under MLX's own dequantization, and the total error is no worse than round to
  /// nearest's on the same stored grid.
  struct MethodCase: Sendable, CustomTestStringConvertible {
    let method: MLXExport.Method
    let dtype: DType
    let bits: Int
    var testDescription: String { "\(method.rawValue) \(dtype.rawValue) \(bits)-bit" }
  }

  static let methodCases: [MethodCase] = [MLXExport.Method.clip, .hqq].flatMap { method in
    [DType.f16, .bf16, .f32].flatMap { dtype in [2, 3, 4].map { MethodCase(method: method, dtype: dtype, bits: $0) } }
  }

  @Test(arguments: methodCases)
  func methodsDecideOnTheStoredGrid(_ setting: MethodCase) throws {
    let (method, dtype, bits) = (setting.method, setting.dtype, setting.bits)
    let rows = 5
    let columns = 96
    let values = Self.weights(rows: rows, columns: columns)
    // What the source holds in `dtype`, as the export reads it.
    let source = values.map { MLXAffineGrid.round($0, to: dtype) }
    let stored = try source.withUnsafeBufferPointer {
      try MLXExport.decide($0, rows: rows, columns: columns, bits: bits, groupSize: 32, method: method, scaleType: dtype)
    }
    let rtn = try source.withUnsafeBufferPointer {
      try MLXExport.decide($0, rows: rows, columns: columns, bits: bits, groupSize: 32, method: .rtn, scaleType: dtype)
    }
    let decided = MLXAffineGrid.dequantize(stored, scaleType: dtype)
    let top = UInt8((1 << bits) - 1)
    for index in source.indices {
      let group = index / 32
      var neighbour = stored
      for code in [stored.codes[index] &- 1, stored.codes[index] &+ 1] where code <= top {
        neighbour.codes[index] = code
        let other = MLXAffineGrid.dequantize(neighbour, scaleType: dtype)[index]
        #expect(abs(source[index] - decided[index]) <= abs(source[index] - other), "element \(index) of group \(group)")
      }
    }
    func error(_ grid: [Float]) -> Double {
      var total = 0.0
      for (value, original) in zip(grid, source) {
        let difference = Double(value - original)
        total += difference * difference
      }
      return total
    }
    #expect(error(decided) <= error(MLXAffineGrid.dequantize(rtn, scaleType: dtype)))
  }

  /// The clip search weighted by column importance: all-ones weights change nothing, and
  /// uneven ones never leave a group's weighted error above plain rounding's on MLX's stored
  /// grid, while lowering the total below the unweighted search's. A weight count other than
  /// the columns is refused.
  @Test(arguments: [(DType.f16, 3), (.bf16, 2), (.f32, 4)])
  func weightedClipSearch(dtype: DType, bits: Int) throws {
    let rows = 6
    let columns = 96
    let weights = Self.weights(rows: rows, columns: columns)
    let importance = (0..<columns).map { Float($0 % 7 == 0 ? 40 : 0.5 + Float($0 % 3)) }
    try weights.withUnsafeBufferPointer { buffer in
      let plain = try MLXAffineGrid.clipSearch(
        buffer, rows: rows, columns: columns, bits: bits, groupSize: 32, scaleType: dtype)
      let ones = try MLXAffineGrid.clipSearch(
        buffer, rows: rows, columns: columns, bits: bits, groupSize: 32, scaleType: dtype,
        importance: [Float](repeating: 1, count: columns))
      #expect(ones == plain)
      let weighted = try MLXAffineGrid.clipSearch(
        buffer, rows: rows, columns: columns, bits: bits, groupSize: 32, scaleType: dtype, importance: importance)
      let rtn = MLXAffineGrid.stored(
        try AffineQuantizer.quantize(buffer, rows: rows, columns: columns, bits: bits, groupSize: .elements(32)),
        weights: buffer, scaleType: dtype, keepCodes: true)
      // Weighted squared error per group of 32, on the values mlx.core.dequantize reads back.
      func error(_ matrix: QuantizedMatrix, _ group: Int) -> Float {
        let values = MLXAffineGrid.dequantize(matrix, scaleType: dtype)
        return (group * 32..<(group + 1) * 32).reduce(Float(0)) { total, index in
          let difference = Double(weights[index]) - Double(values[index])
          return total + Float(difference * difference) * importance[index % columns]
        }
      }
      let groups = weighted.scales.count
      for group in 0..<groups {
        #expect(error(weighted, group) <= error(rtn, group) * (1 + 1e-5), "group \(group)")
      }
      let total = { (matrix: QuantizedMatrix) in (0..<groups).map { error(matrix, $0) }.reduce(0, +) }
      #expect(total(weighted) < total(plain), "weighted \(total(weighted)), unweighted search \(total(plain))")
      #expect(throws: QuantizeError.self) {
        try MLXAffineGrid.clipSearch(
          buffer, rows: rows, columns: columns, bits: bits, groupSize: 32, scaleType: dtype,
          importance: Array(importance.prefix(95)))
      }
    }
  }
}
