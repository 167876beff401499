import Foundation
import QFormats
import Testing

@testable import QCompute

/// Q4_0, Q4_1, Q5_0 and Q5_1 weighted by an importance matrix against
/// `Fixtures/gguf/importance.safetensors`, ggml's `quantize_row_q4_0_impl` and its siblings
/// restated in numpy float32 (and checked there against ggml's own `ggml_quantize_chunk`).
@Suite struct GGUFImportanceTests {
  static let fixture = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
    .deletingLastPathComponent().deletingLastPathComponent().appending(path: "Fixtures/gguf/importance.safetensors").path
  static let cases = ["one_block", "rows_of_64", "special_blocks", "ties"]

  @Test(arguments: cases, [GGUFBlockType.q4_0, .q4_1, .q5_0, .q5_1])
  func blocksMatchGGML(name: String, type: GGUFBlockType) throws {
    let file = try SafetensorsFile(path: Self.fixture)
    let values = try file.floats(of: "\(name)/values")
    let importance = try file.floats(of: "\(name)/importance")
    let expected = try file.withRawBytes(of: "\(name)/\(type.rawValue.lowercased())") { [UInt8]($0) }
    let got = try values.withUnsafeBufferPointer { try GGUFBlocks.encode($0, type: type, importance: importance) }
    #expect(got.count == expected.count)
    let blockBytes = type.blockBytes
    for block in 0..<(expected.count / blockBytes) {
      let range = (block * blockBytes)..<((block + 1) * blockBytes)
      #expect(Array(got[range]) == Array(expected[range]), "\(name) block \(block)")
    }
  }

  /// Every column equally important still weighs each element by sqrt(sigma² + x²), so the
  /// blocks differ from the unweighted reference encoder; they must still decode close to x.
  @Test func uniformImportanceDecodesNearTheValues() throws {
    let columns = 64
    let values = (0..<(4 * columns)).map { Float(sin(Double($0) * 0.37)) }
    let bytes = try values.withUnsafeBufferPointer {
      try GGUFBlocks.encode($0, type: .q4_0, importance: [Float](repeating: 1, count: columns))
    }
    let decoded = try bytes.withUnsafeBytes { try GGUFBlocks.decode($0, type: .q4_0) }
    let worst = zip(values, decoded).map { abs($0 - $1) }.max() ?? .infinity
    #expect(worst <= 1.0 / 7, "worst error \(worst)")
  }

  @Test func typesWithoutAWeightedEncoderAreRefused() {
    let values = [Float](repeating: 1, count: 32)
    for type in [GGUFBlockType.q8_0, .iq4_NL, .q4_K, .q6_K] {
      #expect(throws: QuantizeError.unsupportedImportance(type: type.rawValue)) {
        try values.withUnsafeBufferPointer { try GGUFBlocks.encode($0, type: type, importance: [Float](repeating: 1, count: 32)) }
      }
    }
  }

  @Test(arguments: [(values: 32, columns: 33), (values: 64, columns: 0), (values: 48, columns: 32), (values: 0, columns: 32)])
  func shapesThatAreNotWholeRowsOfBlocks(values: Int, columns: Int) throws {
    let input = [Float](repeating: 0.5, count: values)
    if values == 0 {
      let bytes = try input.withUnsafeBufferPointer {
        try GGUFBlocks.encode($0, type: .q4_0, importance: [Float](repeating: 1, count: columns))
      }
      #expect(bytes.isEmpty)
      return
    }
    #expect(throws: QuantizeError.self) {
      try input.withUnsafeBufferPointer {
        try GGUFBlocks.encode($0, type: .q5_0, importance: [Float](repeating: 1, count: columns))
      }
    }
  }

  /// The stored grid GPTQ decides on, weighted: each block's d (and m) are those of ggml's own
  /// weighted blocks (the fixture's), so codes decided on it are stored without a second rounding.
  @Test(arguments: cases, [GGUFBlockType.q4_0, .q4_1, .q5_0, .q5_1])
  func weightedStoredGridHoldsGGMLsScales(name: String, type: GGUFBlockType) throws {
    let file = try SafetensorsFile(path: Self.fixture)
    let values = try file.floats(of: "\(name)/values")
    let importance = try file.floats(of: "\(name)/importance")
    let expected = try file.withRawBytes(of: "\(name)/\(type.rawValue.lowercased())") { [UInt8]($0) }
    let rows = values.count / importance.count
    let grid = try values.withUnsafeBufferPointer {
      try GGUFBlocks.storedGrid($0, rows: rows, columns: importance.count, type: type, importance: importance)
    }
    let blocks = expected.count / type.blockBytes
    #expect(grid.scales.count == blocks)
    expected.withUnsafeBytes { raw in
      for block in 0..<blocks {
        let bytes = UnsafeRawBufferPointer(rebasing: raw[(block * type.blockBytes)..<((block + 1) * type.blockBytes)])
        #expect(grid.scales[block].bitPattern == GGUFBlocks.loadHalf(bytes, at: 0).bitPattern, "\(name) block \(block) d")
        if type == .q4_1 || type == .q5_1 {
          #expect(grid.offsets[block].bitPattern == GGUFBlocks.loadHalf(bytes, at: 2).bitPattern, "\(name) block \(block) m")
        }
      }
    }
  }

  /// Q8_0 takes no importance in llama-quantize, so its grid is the unweighted one; an importance
  /// that is not one weight per column is refused.
  @Test func storedGridImportanceEdges() throws {
    let values = (0..<128).map { Float(cos(Double($0) * 0.21)) }
    let weights = (0..<64).map { Float(1 + $0 % 5) }
    try values.withUnsafeBufferPointer { buffer in
      let plain = try GGUFBlocks.storedGrid(buffer, rows: 2, columns: 64, type: .q8_0)
      let weighted = try GGUFBlocks.storedGrid(buffer, rows: 2, columns: 64, type: .q8_0, importance: weights)
      #expect(plain == weighted)
      #expect(throws: QuantizeError.self) {
        try GGUFBlocks.storedGrid(buffer, rows: 2, columns: 64, type: .q4_0, importance: Array(weights.prefix(63)))
      }
      let empty = try GGUFBlocks.storedGrid(
        UnsafeBufferPointer(rebasing: buffer[0..<0]), rows: 0, columns: 64, type: .q4_0, importance: weights)
      #expect(empty.scales.isEmpty)
    }
  }
}
