/// The 32-element block types as stored grids: each block's d (and m) as llama.cpp's quantizer
/// computes them from the original weights, rounded to F16 as the block stores them, so that
/// codes decided on the grid (GPTQ's) read back through ggml's dequantization exactly.
extension GGUFBlocks {
  /// The block types whose grid a method can decide codes on: one F16 step (and minimum) per
  /// block of 32 and plain integer codes. K-quants and IQ4_NL are not among them: their
  /// sub-block scales are themselves quantized, or their codes index a non-linear table.
  public static let storedGridTypes: [GGUFBlockType] = [.q4_0, .q4_1, .q5_0, .q5_1, .q8_0]

  /// The stored grid of `type`: code range and how ggml reads a code back.
  static func gridShape(_ type: GGUFBlockType) -> (bits: Int, arithmetic: StoredGrid.Arithmetic)? {
    switch type {
    case .q4_0: (4, .ggmlZero(8))
    case .q5_0: (5, .ggmlZero(16))
    case .q8_0: (8, .ggmlZero(128))
    case .q4_1: (4, .ggmlMinimum)
    case .q5_1: (5, .ggmlMinimum)
    default: nil
    }
  }

  /// The grid llama.cpp's quantizer of `type` chooses for `[rows, columns]` row-major weights:
  /// each block's d (and m) as its encoder stores them.
  ///
  /// With `importance` (one weight per column, as `llama-imatrix` records them), the d (and m)
  /// are those `llama-quantize --imatrix` chooses for Q4_0, Q4_1, Q5_0 and Q5_1 (the weighted
  /// scale search of `encode(_:type:importance:)`); Q8_0 takes none, as there.
  ///
  /// - Throws: `QuantizeError.unsupportedBlockType` for a type outside `storedGridTypes`,
  ///   `.columnsNotDivisible` for rows that are not whole blocks, `.elementCountMismatch` for
  ///   an importance that is not one weight per column.
  public static func storedGrid(
    _ weights: UnsafeBufferPointer<Float>, rows: Int, columns: Int, type: GGUFBlockType,
    importance: [Float]? = nil
  ) throws(QuantizeError) -> StoredGrid {
    guard let shape = gridShape(type) else { throw .unsupportedBlockType(type: type.rawValue) }
    guard columns % type.blockElements == 0 else {
      throw .columnsNotDivisible(
        quantizer: "GGUF \(type.rawValue)", columns: columns, by: type.blockElements)
    }
    guard weights.count == rows * columns else {
      throw .elementCountMismatch(
        quantizer: "GGUF \(type.rawValue)", expected: rows * columns, actual: weights.count)
    }
    let weighting = importanceTypes.contains(type) ? importance : nil
    if let weighting, weighting.count != columns {
      throw .elementCountMismatch(
        quantizer: "GGUF \(type.rawValue) importance", expected: columns, actual: weighting.count)
    }
    let encoded =
      if let weighting, rows > 0, columns > 0 {
        try encode(weights, type: type, importance: weighting)
      } else {
        try encode(weights, type: type)
      }
    let blocks = encoded.count / type.blockBytes
    var scales = [Float](repeating: 0, count: blocks)
    var offsets = [Float](repeating: 0, count: blocks)
    encoded.withUnsafeBytes { raw in
      for block in 0..<blocks {
        let bytes = UnsafeRawBufferPointer(
          rebasing: raw[(block * type.blockBytes)..<((block + 1) * type.blockBytes)])
        scales[block] = loadHalf(bytes, at: 0)
        if case .ggmlMinimum = shape.arithmetic { offsets[block] = loadHalf(bytes, at: 2) }
      }
    }
    return try StoredGrid(
      rows: rows, columns: columns, groupLength: type.blockElements, bits: shape.bits,
      arithmetic: shape.arithmetic, scales: scales, offsets: offsets)
  }

  /// The blocks of rows `rowRange` of decided codes, as `type` lays them out: the grid's F16 d
  /// (and m) and the codes unchanged.
  ///
  /// - Throws: `QuantizeError.unsupportedBlockType` when `codes` were not decided on `type`'s grid.
  public static func encode(
    _ decided: StoredCodes, rows rowRange: Range<Int>, type: GGUFBlockType
  ) throws(QuantizeError) -> [UInt8] {
    let grid = decided.grid
    guard let shape = gridShape(type), shape.bits == grid.bits, shape.arithmetic == grid.arithmetic,
      grid.groupLength == type.blockElements
    else { throw .unsupportedBlockType(type: type.rawValue) }
    let blocksPerRow = grid.groupsPerRow
    var out = [UInt8](repeating: 0, count: rowRange.count * blocksPerRow * type.blockBytes)
    out.withUnsafeMutableBytes { raw in
      for (position, row) in rowRange.enumerated() {
        for block in 0..<blocksPerRow {
          let group = row * blocksPerRow + block
          let start = (position * blocksPerRow + block) * type.blockBytes
          let target = UnsafeMutableRawBufferPointer(
            rebasing: raw[start..<(start + type.blockBytes)])
          let first = row * grid.columns + block * 32
          let q = decided.codes[first..<(first + 32)].map(Int.init)
          storeHalf(grid.scales[group], into: target, at: 0)
          switch type {
          case .q8_0:
            for index in 0..<32 { target[2 + index] = UInt8(truncatingIfNeeded: q[index] - 128) }
          case .q4_0:
            for index in 0..<16 { target[2 + index] = UInt8(q[index] | (q[index + 16] << 4)) }
          case .q4_1:
            storeHalf(grid.offsets[group], into: target, at: 2)
            for index in 0..<16 { target[4 + index] = UInt8(q[index] | (q[index + 16] << 4)) }
          case .q5_0, .q5_1:
            let codesAt = type == .q5_0 ? 6 : 8
            if type == .q5_1 { storeHalf(grid.offsets[group], into: target, at: 2) }
            var qh: UInt32 = 0
            for index in 0..<16 {
              target[codesAt + index] = UInt8(q[index] & 0x0F) | (UInt8(q[index + 16] & 0x0F) << 4)
              qh |= highBits(q[index], q[index + 16], at: index)
            }
            target.storeBytes(of: qh.littleEndian, toByteOffset: codesAt - 4, as: UInt32.self)
          default:
            break
          }
        }
      }
    }
    return out
  }
}
