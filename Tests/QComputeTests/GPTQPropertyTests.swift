import Foundation
import Testing

@testable import QCompute

@Suite("GPTQ properties")
struct GPTQPropertyTests {
  struct Shape: Sendable, CustomTestStringConvertible {
    var grid: CalibratedGrid
    var rows: Int
    var columns: Int
    var testDescription: String { "\(grid) \(rows)x\(columns)" }
  }

  static let identityShapes: [Shape] = [
    Shape(grid: .affine(bits: 4, groupSize: 32), rows: 1, columns: 32),
    Shape(grid: .affine(bits: 2, groupSize: 32), rows: 7, columns: 64),
    Shape(grid: .affine(bits: 3, groupSize: 16), rows: 8, columns: 160),
    Shape(grid: .affine(bits: 8, groupSize: .perChannel), rows: 7, columns: 1),
    Shape(grid: .affine(bits: 4, groupSize: .perChannel), rows: 9, columns: 130),
    Shape(grid: .symmetric(bits: 4, groupSize: 32), rows: 7, columns: 64),
    Shape(grid: .symmetric(bits: 2, groupSize: 128), rows: 8, columns: 256),
    Shape(grid: .symmetric(bits: 3, groupSize: .perChannel), rows: 65, columns: 63),
    Shape(grid: .bilevel(.w2g16g16), rows: 16, columns: 32),
    Shape(grid: .bilevel(.w2g16g16), rows: 32, columns: 160),
    Shape(grid: .bilevel(.init(bits: 4, groupSize: 32, scaleGroupSize: 8)), rows: 8, columns: 64),
  ]

  /// With H = c I nothing couples the columns, so GPTQ is plain rounding on the grid.
  @Test(arguments: identityShapes, [false, true])
  func identityHessianIsRoundToNearest(_ shape: Shape, actOrder: Bool) throws {
    var generator = SeededGenerator(seed: UInt64(shape.rows * 1000 + shape.columns))
    let weights = randomWeights(rows: shape.rows, columns: shape.columns, using: &generator)
    var hessian = Matrix<Double>.identity(shape.columns)
    for i in 0..<shape.columns { hessian[i, i] = 3 }
    let result = try GPTQ.quantize(
      weights, rows: shape.rows, columns: shape.columns, hessian: hessian, grid: shape.grid,
      options: .init(actOrder: actOrder))
    let rounded = try weights.withUnsafeBufferPointer {
      try shape.grid.roundToNearest($0, rows: shape.rows, columns: shape.columns)
    }
    #expect(result.quantized == rounded)
  }

  @Test func emptyMatrices() throws {
    let none = try GPTQ.quantize(
      [Float](), rows: 0, columns: 64, hessian: Matrix<Double>.identity(64),
      grid: .affine(bits: 4, groupSize: 32))
    #expect(none.quantized.codes.isEmpty && none.rowLosses.isEmpty)
  }

  /// GPTQ's reported loss is ½ (W - Q) H' (W - Q)ᵀ for the damped H', row by row.
  @Test(arguments: [false, true])
  func reportedLossIsTheDampedQuadraticForm(actOrder: Bool) throws {
    var generator = SeededGenerator(seed: 11)
    let (rows, columns) = (16, 160)
    let activations = correlatedActivations(tokens: 300, columns: columns, using: &generator)
    let hessian = try activations.gram()
    let weights = randomWeights(rows: rows, columns: columns, using: &generator)
    let result = try GPTQ.quantize(
      weights, rows: rows, columns: columns, hessian: hessian,
      grid: .affine(bits: 3, groupSize: 32), options: .init(dampingFraction: 0.05, actOrder: actOrder))
    var damped = hessian
    let mean = (0..<columns).map { hessian[$0, $0] }.reduce(0, +) / Double(columns)
    for i in 0..<columns { damped[i, i] += 0.05 * mean }
    let expected = quadraticError(
      difference(weights, result.quantized), rows: rows, columns: columns, hessian: damped)
    for (loss, full) in zip(result.rowLosses, expected) {
      #expect(abs(2 * loss - full) <= 1e-8 * full)
    }
  }

  static let propertyGrids: [CalibratedGrid] = [
    .affine(bits: 3, groupSize: 32), .affine(bits: 2, groupSize: .perChannel),
    .symmetric(bits: 4, groupSize: 32), .bilevel(.w2g16g16),
    .bilevel(.init(bits: 3, groupSize: 32, scaleGroupSize: 16)),
  ]

  /// On correlated activations GPTQ's output error does not exceed round-to-nearest's.
  @Test(arguments: propertyGrids, [false, true])
  func beatsRoundToNearest(_ grid: CalibratedGrid, actOrder: Bool) throws {
    let (rows, columns) = (32, 128)
    for seed in UInt64(1)...4 {
      var generator = SeededGenerator(seed: seed)
      let activations = correlatedActivations(tokens: 256, columns: columns, using: &generator)
      let hessian = try activations.gram()
      let weights = randomWeights(rows: rows, columns: columns, using: &generator)
      let gptq = try GPTQ.quantize(
        weights, rows: rows, columns: columns, hessian: hessian, grid: grid,
        options: .init(actOrder: actOrder))
      let rounded = try weights.withUnsafeBufferPointer {
        try grid.roundToNearest($0, rows: rows, columns: columns)
      }
      let gptqError = quadraticError(
        difference(weights, gptq.quantized), rows: rows, columns: columns, hessian: hessian
      ).reduce(0, +)
      let roundedError = quadraticError(
        difference(weights, rounded), rows: rows, columns: columns, hessian: hessian
      ).reduce(0, +)
      #expect(gptqError <= roundedError, "seed \(seed): \(gptqError) > \(roundedError)")
    }
  }

  /// Group parameters come from fully updated weights, so the block size changes only speed.
  @Test(arguments: [CalibratedGrid.affine(bits: 3, groupSize: 16), .bilevel(.w2g16g16)])
  func blockSizeDoesNotChangeTheResult(_ grid: CalibratedGrid) throws {
    var generator = SeededGenerator(seed: 5)
    let (rows, columns) = (16, 192)
    let hessian = try correlatedActivations(tokens: 400, columns: columns, using: &generator).gram()
    let weights = randomWeights(rows: rows, columns: columns, using: &generator)
    let reference = try GPTQ.quantize(
      weights, rows: rows, columns: columns, hessian: hessian, grid: grid)
    for blockSize in [1, 16, 40, 100, 1000] {
      let other = try GPTQ.quantize(
        weights, rows: rows, columns: columns, hessian: hessian, grid: grid,
        options: .init(blockSize: blockSize))
      let differing = zip(other.quantized.codes, reference.quantized.codes).filter { $0 != $1 }
      #expect(differing.isEmpty, "block size \(blockSize): \(differing.count) codes differ")
    }
  }

  /// A fused weight (Phi-3's `qkv_proj`: q, k and v rows stacked) under the Gram matrix its
  /// parts share is GPTQ on each part alone: the rows only meet in the Hessian, which is the same.
  ///
  /// Per row the arithmetic is the same sequence of operations but for the lazy batch update,
  /// whose BLAS product may sum its at most `blockSize` terms in another order for another row
  /// count: a few Double ulps, 1e-14 relative at most on these sizes. A code or Float weight
  /// would change only if a value sat that close to a rounding boundary, so codes and
  /// dequantized weights must be equal, and row losses equal to 1e-12 relative (100 x the bound).
  /// Bilevel chunks of 16 rows line up with the parts, whose row counts are multiples of 16.
  @Test(arguments: [
    CalibratedGrid.affine(bits: 4, groupSize: 16), .symmetric(bits: 3, groupSize: 32), .affine(bits: 4, groupSize: .perChannel),
    .bilevel(.w2g16g16),
  ], [false, true])
  func fusedRowsAreEachPartAlone(_ grid: CalibratedGrid, actOrder: Bool) throws {
    var generator = SeededGenerator(seed: 21)
    let columns = 160
    let parts = [64, 32, 32]
    let hessian = try correlatedActivations(tokens: 300, columns: columns, using: &generator).gram()
    let weights = parts.map { randomWeights(rows: $0, columns: columns, using: &generator) }
    let options = GPTQ.Options(actOrder: actOrder)
    let fused = try GPTQ.quantize(
      weights.flatMap { $0 }, rows: parts.reduce(0, +), columns: columns, hessian: hessian, grid: grid,
      options: options)
    let apart = try zip(weights, parts).map { values, rows in
      try GPTQ.quantize(values, rows: rows, columns: columns, hessian: hessian, grid: grid, options: options)
    }
    #expect(fused.quantized.codes == apart.flatMap(\.quantized.codes))
    #expect(fused.quantized.dequantize() == apart.flatMap { $0.quantized.dequantize() })
    let losses = apart.flatMap(\.rowLosses)
    #expect(fused.rowLosses.count == losses.count)
    for (a, b) in zip(fused.rowLosses, losses) {
      #expect(abs(a - b) <= 1e-12 * max(abs(a), abs(b)), "\(a) vs \(b)")
    }
  }

  @Test func floatAndDoubleHessiansAgree() throws {
    var generator = SeededGenerator(seed: 9)
    let activations = correlatedActivations(tokens: 100, columns: 64, using: &generator)
    let hessian = try activations.gram()
    let single = try Matrix<Float>(
      rows: 64, columns: 64, elements: hessian.elements.map { Float($0) })
    let widened = try Matrix<Double>(
      rows: 64, columns: 64, elements: single.elements.map { Double($0) })
    let weights = randomWeights(rows: 8, columns: 64, using: &generator)
    let grid = CalibratedGrid.symmetric(bits: 4, groupSize: 32)
    let a = try GPTQ.quantize(weights, rows: 8, columns: 64, hessian: single, grid: grid)
    let b = try GPTQ.quantize(weights, rows: 8, columns: 64, hessian: widened, grid: grid)
    #expect(a.quantized == b.quantized)
  }

  @Test func rejectsBadInput() {
    let weights = [Float](repeating: 0.5, count: 8 * 64)
    #expect(throws: CalibrationError.hessianShapeMismatch(
      operation: "GPTQ", rows: 32, columns: 32, weightColumns: 64)) {
      _ = try GPTQ.quantize(
        weights, rows: 8, columns: 64, hessian: Matrix<Double>.identity(32),
        grid: .affine(bits: 4, groupSize: 32))
    }
    #expect(throws: CalibrationError.grid(
      .scaleCountNotDivisible(quantizer: "GPTQ", scales: 8, by: 16))) {
      _ = try GPTQ.quantize(
        weights, rows: 8, columns: 64, hessian: Matrix<Double>.identity(64),
        grid: .bilevel(.w2g16g16))
    }
    #expect(throws: CalibrationError.self) {
      _ = try GPTQ.quantize(
        weights, rows: 8, columns: 64, hessian: Matrix<Double>.identity(64),
        grid: .affine(bits: 4, groupSize: 32), options: .init(dampingFraction: -1))
    }
    #expect(throws: CalibrationError.hessianNotPositiveDefinite(operation: "GPTQ", dampingFraction: 0)) {
      var hessian = Matrix<Double>(rows: 64, columns: 64)
      for i in 0..<64 { hessian[i, i] = 1 }
      hessian[0, 1] = 2
      hessian[1, 0] = 2
      _ = try GPTQ.quantize(
        weights, rows: 8, columns: 64, hessian: hessian, grid: .affine(bits: 4, groupSize: 32),
        options: .init(dampingFraction: 0))
    }
  }
}
