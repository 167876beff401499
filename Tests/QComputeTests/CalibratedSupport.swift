import Foundation
import Testing

@testable import QCompute

/// Reads Fixtures/calibrated/gptq.{json,bin}, written by Fixtures/make_calibrated_fixtures.py.
struct CalibratedFixtures: Sendable {
  /// An array inside the blob: [byte offset, element count].
  typealias Slice = [Int]

  struct HessianEntry: Decodable, Sendable {
    var columns: Int
    var values: Slice
  }

  struct Case: Decodable, Sendable, CustomTestStringConvertible {
    var name: String
    var rows: Int
    var columns: Int
    var hessian: String
    var grid: String
    var bits: Int
    var group_size: Int
    var scale_group_size: Int
    var act_order: Bool
    var weights: Slice
    var codes: Slice
    var scales: Slice
    var offsets: Slice
    var row_losses: Slice
    var first_scales: Slice?
    var scale_codes: Slice?
    var chunk_scales: Slice?
    var chunk_zeros: Slice?

    var testDescription: String { name }

    var calibratedGrid: CalibratedGrid {
      let groupSize: GroupSize = group_size == 0 ? .perChannel : .elements(group_size)
      switch grid {
      case "affine": return .affine(bits: bits, groupSize: groupSize)
      case "symmetric": return .symmetric(bits: bits, groupSize: groupSize)
      default:
        return .bilevel(
          .init(bits: bits, groupSize: group_size, scaleGroupSize: scale_group_size))
      }
    }
  }

  struct Manifest: Decodable, Sendable {
    var hessians: [String: HessianEntry]
    var cases: [Case]
  }

  let blob: Data
  let manifest: Manifest

  static var directory: URL {
    URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
      .deletingLastPathComponent().appending(path: "Fixtures/calibrated")
  }

  static let loaded = Result { try CalibratedFixtures() }

  /// The cases, or none when the fixtures are unreadable (the loading test reports that).
  static var cases: [Case] { (try? loaded.get().manifest.cases) ?? [] }

  init() throws {
    blob = try Data(contentsOf: Self.directory.appending(path: "gptq.bin"))
    manifest = try JSONDecoder().decode(
      Manifest.self, from: Data(contentsOf: Self.directory.appending(path: "gptq.json")))
  }

  func values<Element>(_ slice: Slice, as type: Element.Type) -> [Element] {
    blob.withUnsafeBytes { raw in
      (0..<slice[1]).map {
        raw.loadUnaligned(fromByteOffset: slice[0] + $0 * MemoryLayout<Element>.stride, as: type)
      }
    }
  }

  func hessian(_ name: String) throws -> Matrix<Float> {
    let entry = try #require(manifest.hessians[name])
    return try Matrix(
      rows: entry.columns, columns: entry.columns, elements: values(entry.values, as: Float.self))
  }
}

/// tr(D H Dᵀ) for a row-major [rows, columns] D, by plain loops in Double.
func quadraticError(_ delta: [Double], rows: Int, columns: Int, hessian: Matrix<Double>) -> [Double]
{
  (0..<rows).map { row in
    var total = 0.0
    for i in 0..<columns {
      var inner = 0.0
      for j in 0..<columns { inner += hessian[i, j] * delta[row * columns + j] }
      total += delta[row * columns + i] * inner
    }
    return total
  }
}

/// Activations whose inputs are correlated and unevenly scaled, like a linear layer's inputs.
func correlatedActivations(tokens: Int, columns: Int, using generator: inout SeededGenerator)
  -> Matrix<Double>
{
  let mixing: Matrix<Double> = generator.matrix(columns, columns)
  var base: Matrix<Double> = generator.matrix(tokens, columns)
  let columnScales = (0..<columns).map { _ in Foundation.exp(0.7 * generator.normal()) }
  var mixed = (try? base.matmul(mixing, alpha: 1 / Double(columns).squareRoot())) ?? base
  for t in 0..<tokens {
    for c in 0..<columns { mixed[t, c] = (mixed[t, c] + base[t, c]) * columnScales[c] }
  }
  base = mixed
  return base
}

func randomWeights(rows: Int, columns: Int, using generator: inout SeededGenerator) -> [Float] {
  (0..<(rows * columns)).map { _ in Float(0.05 * generator.normal()) }
}

func difference(_ weights: [Float], _ quantized: QuantizedMatrix) -> [Double] {
  zip(weights, quantized.dequantize()).map { Double($0) - Double($1) }
}
