import Foundation
import QFormats
import Testing

@testable import QCompute

/// One block type with a stored grid, by name.
struct StoredBlockCase: Sendable, CustomTestStringConvertible {
  let type: GGUFBlockType
  var testDescription: String { type.rawValue }
  static let all = GGUFBlocks.storedGridTypes.map(StoredBlockCase.init)
}

/// GPTQ onto a layout's stored grid: the grid is the layout quantizer's, the codes GPTQ's, and
/// the block bytes read back exactly as decided.
@Suite("GPTQ on stored grids")
struct StoredGridGPTQTests {
  /// MLX's arithmetic at F16 scales: a grid like `mlx.core.quantize`'s (min/max, bias form).
  static func mlxGrid(_ weights: [Float], rows: Int, columns: Int, bits: Int, group: Int) throws
    -> StoredGrid
  {
    let decided = try weights.withUnsafeBufferPointer {
      try AffineQuantizer.quantize(
        $0, rows: rows, columns: columns, bits: bits, groupSize: .elements(group))
    }
    return try StoredGrid(
      rows: rows, columns: columns, groupLength: group, bits: bits, arithmetic: .mlxAffine(.f16),
      scales: decided.scales.map { StoredGrid.round($0, to: .f16) },
      offsets: decided.offsets.map { StoredGrid.round($0, to: .f16) })
  }

  static func ggufGrid(_ weights: [Float], rows: Int, columns: Int, type: GGUFBlockType) throws
    -> StoredGrid
  {
    try weights.withUnsafeBufferPointer {
      try GGUFBlocks.storedGrid($0, rows: rows, columns: columns, type: type)
    }
  }

  /// tr((W - Q) H (W - Q)ᵀ) for codes on a stored grid.
  static func outputError(_ weights: [Float], _ codes: StoredCodes, hessian: Matrix<Double>)
    -> Double
  {
    let delta = zip(weights, codes.dequantize()).map { Double($0) - Double($1) }
    return quadraticError(
      delta, rows: codes.grid.rows, columns: codes.grid.columns, hessian: hessian
    ).reduce(0, +)
  }

  /// GPTQ's codes on every block grid beat round to nearest on the same grid under the
  /// calibration Hessian, with and without act-order, and keep the grid's every d and m.
  @Test(arguments: StoredBlockCase.all, [false, true])
  func gptqBeatsNearestOnBlockGrids(_ setting: StoredBlockCase, actOrder: Bool) throws {
    var generator = SeededGenerator(seed: 41)
    let rows = 12
    let columns = 96
    let hessian = try correlatedActivations(tokens: 256, columns: columns, using: &generator).gram()
    let weights = randomWeights(rows: rows, columns: columns, using: &generator)
    let grid = try Self.ggufGrid(weights, rows: rows, columns: columns, type: setting.type)
    let (gptq, _) = try weights.withUnsafeBufferPointer {
      try GPTQ.quantize($0, hessian: hessian, onto: grid, options: .init(actOrder: actOrder))
    }
    #expect(gptq.grid == grid)
    let nearest = StoredCodes(
      grid: grid, codes: weights.withUnsafeBufferPointer { grid.nearestCodes($0) })
    let gptqError = Self.outputError(weights, gptq, hessian: hessian)
    let nearestError = Self.outputError(weights, nearest, hessian: hessian)
    #expect(gptqError < nearestError, "GPTQ \(gptqError), nearest \(nearestError)")
  }

  @Test(arguments: [2, 3, 4, 8], [32, 64])
  func gptqBeatsNearestOnMLXGrids(bits: Int, group: Int) throws {
    var generator = SeededGenerator(seed: UInt64(bits * 100 + group))
    let rows = 8
    let columns = 128
    let hessian = try correlatedActivations(tokens: 300, columns: columns, using: &generator).gram()
    let weights = randomWeights(rows: rows, columns: columns, using: &generator)
    let grid = try Self.mlxGrid(weights, rows: rows, columns: columns, bits: bits, group: group)
    let (gptq, _) = try weights.withUnsafeBufferPointer {
      try GPTQ.quantize($0, hessian: hessian, onto: grid)
    }
    let nearest = StoredCodes(
      grid: grid, codes: weights.withUnsafeBufferPointer { grid.nearestCodes($0) })
    #expect(gptq.codes.allSatisfy { Int($0) <= grid.largestCode })
    #expect(
      Self.outputError(weights, gptq, hessian: hessian)
        < Self.outputError(weights, nearest, hessian: hessian))
  }

  /// A group grid made from the original weights whatever GPTQ hands over is the static grid
  /// a group at a time: the codes, grid and losses equal GPTQ onto the whole grid. Made from
  /// what GPTQ hands over, the first group's grid is still the original one (no column before
  /// it has spread error), the later ones follow the updates, and the codes beat nearest
  /// rounding on the grid they make.
  @Test(arguments: StoredBlockCase.all)
  func regroupingMakesEachGroupFromTheUpdatedWeights(_ setting: StoredBlockCase) throws {
    var generator = SeededGenerator(seed: 23)
    let (rows, columns) = (6, 96)
    let hessian = try correlatedActivations(tokens: 200, columns: columns, using: &generator).gram()
    let weights = randomWeights(rows: rows, columns: columns, using: &generator)
    let whole = try Self.ggufGrid(weights, rows: rows, columns: columns, type: setting.type)
    let length = whole.groupLength
    func originalSlice(_ first: Int, _ width: Int) -> [Float] {
      (0..<rows).flatMap { row in weights[(row * columns + first)..<(row * columns + first + width)] }
    }
    let (static_, staticLosses) = try weights.withUnsafeBufferPointer {
      try GPTQ.quantize($0, hessian: hessian, onto: whole)
    }
    var firsts: [Int] = []
    let (fixed, fixedLosses) = try weights.withUnsafeBufferPointer {
      try GPTQ.quantize(
        $0, rows: rows, columns: columns, hessian: hessian, groupLength: length,
        regridding: { _, r, c, first in
          firsts.append(first)
          return try Self.ggufGrid(originalSlice(first, c), rows: r, columns: c, type: setting.type)
        })
    }
    #expect(firsts == Array(stride(from: 0, to: columns, by: length)))
    #expect(fixed == static_)
    #expect(fixedLosses == staticLosses)

    var handed: [[Float]] = []
    let (regrouped, _) = try weights.withUnsafeBufferPointer {
      try GPTQ.quantize(
        $0, rows: rows, columns: columns, hessian: hessian, groupLength: length,
        regridding: { values, r, c, _ in
          handed.append(Array(values))
          return try Self.ggufGrid(Array(values), rows: r, columns: c, type: setting.type)
        })
    }
    #expect(handed.first == originalSlice(0, length))
    #expect(handed.last != originalSlice(columns - length, length))
    let groups = columns / length
    #expect(Array(regrouped.grid.scales.enumerated().filter { $0.offset % groups == 0 }.map(\.element))
      == Array(whole.scales.enumerated().filter { $0.offset % groups == 0 }.map(\.element)))
    let nearest = StoredCodes(
      grid: regrouped.grid, codes: weights.withUnsafeBufferPointer { regrouped.grid.nearestCodes($0) })
    #expect(Self.outputError(weights, regrouped, hessian: hessian) < Self.outputError(weights, nearest, hessian: hessian))
  }

  @Test func regroupingRefusesActOrderAndMisshapenGroups() throws {
    var generator = SeededGenerator(seed: 3)
    let (rows, columns) = (4, 64)
    let hessian = try correlatedActivations(tokens: 100, columns: columns, using: &generator).gram()
    let weights = randomWeights(rows: rows, columns: columns, using: &generator)
    let make: GPTQ.GroupGridMaker = { values, r, c, _ in try Self.ggufGrid(Array(values), rows: r, columns: c, type: .q4_0) }
    #expect(throws: CalibrationError.self) {
      try weights.withUnsafeBufferPointer {
        try GPTQ.quantize($0, rows: rows, columns: columns, hessian: hessian, groupLength: 32, regridding: make, options: .init(actOrder: true))
      }
    }
    #expect(throws: CalibrationError.self) {
      try weights.withUnsafeBufferPointer {
        try GPTQ.quantize($0, rows: rows, columns: columns, hessian: hessian, groupLength: 48, regridding: make)
      }
    }
    // A maker whose grid covers two groups where one was asked for.
    #expect(throws: CalibrationError.self) {
      try weights.withUnsafeBufferPointer {
        try GPTQ.quantize(
          $0, rows: rows, columns: columns, hessian: hessian, groupLength: 64,
          regridding: { values, r, c, _ in try Self.ggufGrid(Array(values), rows: r, columns: c, type: .q4_0) })
      }
    }
  }

  /// The blocks written from decided codes decode (through ggml's dequantization, checked
  /// against gguf-py in QuantizeGGUFTests) to exactly the weights GPTQ decided, bit for bit.
  @Test(arguments: StoredBlockCase.all)
  func decidedBlocksReadBackBitForBit(_ setting: StoredBlockCase) throws {
    var generator = SeededGenerator(seed: 7)
    let (rows, columns) = (5, 64)
    let hessian = try correlatedActivations(tokens: 128, columns: columns, using: &generator).gram()
    var weights = randomWeights(rows: rows, columns: columns, using: &generator)
    weights[3] = 0.9  // an outlier makes the block's d large
    let grid = try Self.ggufGrid(weights, rows: rows, columns: columns, type: setting.type)
    let (decided, _) = try weights.withUnsafeBufferPointer {
      try GPTQ.quantize($0, hessian: hessian, onto: grid)
    }
    let bytes = try GGUFBlocks.encode(decided, rows: 0..<rows, type: setting.type)
    #expect(
      bytes.count == GGUFBlocks.encodedByteCount(elements: rows * columns, type: setting.type))
    let decoded = try bytes.withUnsafeBytes { try GGUFBlocks.decode($0, type: setting.type) }
    #expect(decoded.map(\.bitPattern) == decided.dequantize().map(\.bitPattern))
    // Round to nearest on the grid is llama.cpp's own encoding wherever its rounding agrees:
    // the grid is the encoder's, so the encoder's bytes read back on it.
    let encoder = try weights.withUnsafeBufferPointer {
      try GGUFBlocks.encode($0, type: setting.type)
    }
    for block in 0..<(rows * columns / 32) {
      let range = (block * setting.type.blockBytes)..<(block * setting.type.blockBytes + 2)
      #expect(Array(encoder[range]) == Array(bytes[range]), "block \(block)'s d")
    }
  }

  /// A row of a block grid is whole blocks of 32 and of an MLX grid whole groups: 32, 64 and 96
  /// columns fit; 33, 63 and 65 are refused, never padded.
  @Test(arguments: [32, 33, 63, 64, 65, 96])
  func rowsMustBeWholeBlocks(columns: Int) throws {
    var generator = SeededGenerator(seed: 3)
    let weights = randomWeights(rows: 2, columns: columns, using: &generator)
    let fits = columns % 32 == 0
    for type in GGUFBlocks.storedGridTypes {
      if fits {
        let grid = try Self.ggufGrid(weights, rows: 2, columns: columns, type: type)
        #expect(grid.scales.count == 2 * columns / 32)
      } else {
        #expect(throws: QuantizeError.self) {
          _ = try Self.ggufGrid(weights, rows: 2, columns: columns, type: type)
        }
      }
    }
    let mlxGroups = 2 * max(1, columns / 64)
    let makeMLXGrid = {
      try StoredGrid(
        rows: 2, columns: columns, groupLength: 64, bits: 4, arithmetic: .mlxAffine(.f16),
        scales: [Float](repeating: 1, count: mlxGroups),
        offsets: [Float](repeating: 0, count: mlxGroups))
    }
    if columns % 64 == 0 {
      #expect(try makeMLXGrid().groupsPerRow == columns / 64)
    } else {
      #expect(throws: QuantizeError.self) { _ = try makeMLXGrid() }
    }
  }

  /// K-quants and IQ4_NL have no stored grid here.
  @Test func kQuantsHaveNoStoredGrid() throws {
    let weights = [Float](repeating: 0.5, count: 256)
    for type in [GGUFBlockType.q4_K, .q6_K, .iq4_NL] {
      #expect(throws: QuantizeError.self) {
        _ = try Self.ggufGrid(weights, rows: 1, columns: 256, type: type)
      }
    }
  }

  /// The nearest code is the nearest under MLX's double rounding, neighbours included.
  @Test func nearestCodeIsNearestInTheRuntimesArithmetic() throws {
    var generator = SeededGenerator(seed: 11)
    let weights = randomWeights(rows: 4, columns: 64, using: &generator)
    let grid = try Self.mlxGrid(weights, rows: 4, columns: 64, bits: 3, group: 32)
    for (index, weight) in weights.enumerated() {
      let group = index / 64 * 2 + index % 64 / 32
      let (scale, offset) = (grid.scales[group], grid.offsets[group])
      let chosen = grid.nearestCode(weight, scale: scale, offset: offset)
      let best =
        (0...grid.largestCode).map { abs(weight - grid.value($0, scale: scale, offset: offset)) }
        .min() ?? 0
      #expect(abs(weight - grid.value(Int(chosen), scale: scale, offset: offset)) == best)
    }
  }
}
