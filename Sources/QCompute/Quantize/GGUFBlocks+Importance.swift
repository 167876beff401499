/// Q4_0 and Q5_0 weighted by an importance matrix, as `llama-quantize --imatrix` encodes them.
///
/// Without weights ggml rounds each block against its largest magnitude (`encodeQ4_0`). With a
/// per-column importance (the mean squared activation `llama-imatrix` records) it follows
/// `quantize_row_q4_0_impl` / `quantize_row_q5_0_impl`: every element of a row is weighted by
/// importance * sqrt(sigma² + x²), sigma² the row's mean square, and `make_qx_quants` tries 19
/// scales around absmax / nmax, keeping the one of least weighted squared error. The arithmetic is
/// f32 in ggml's order, so the blocks are ggml's own.
extension GGUFBlocks {
  /// The types whose encoder takes an importance matrix here.
  public static let importanceTypes: Set<GGUFBlockType> = [.q4_0, .q5_0]

  /// Encodes `rows` rows of `importance.count` values each, weighting each column by its
  /// importance.
  /// - Throws: `QuantizeError` when the type takes no importance, the rows are not whole
  ///   blocks, or the values are not whole rows.
  public static func encode(
    _ values: UnsafeBufferPointer<Float>, type: GGUFBlockType, importance: [Float]
  ) throws(QuantizeError) -> [UInt8] {
    guard importanceTypes.contains(type) else {
      throw .unsupportedImportance(type: type.rawValue)
    }
    let columns = importance.count
    guard columns > 0, columns % type.blockElements == 0 else {
      throw .columnsNotDivisible(quantizer: "GGUF \(type.rawValue)", columns: columns, by: type.blockElements)
    }
    guard values.count % columns == 0 else {
      throw .elementCountMismatch(
        quantizer: "GGUF \(type.rawValue)", expected: (values.count / columns + 1) * columns, actual: values.count)
    }
    let rows = values.count / columns
    let rowBytes = columns / type.blockElements * type.blockBytes
    var out = [UInt8](repeating: 0, count: rows * rowBytes)
    out.withUnsafeMutableBytes { raw in
      guard let start = raw.baseAddress, let source = values.baseAddress else { return }
      let base = SendableMutablePointer(start.assumingMemoryBound(to: UInt8.self))
      importance.withUnsafeBufferPointer { importance in
        forEachRowBlock(rows: rows, elementsPerRow: columns) { range in
          for row in range {
            encodeWeightedRow(
              UnsafeBufferPointer(start: source + row * columns, count: columns), type: type,
              importance: importance,
              into: UnsafeMutableRawBufferPointer(start: base.pointer + row * rowBytes, count: rowBytes))
          }
        }
      }
    }
    return out
  }

  /// One row: sigma² over the whole row, then each block of 32 on its weighted scale.
  static func encodeWeightedRow(
    _ x: UnsafeBufferPointer<Float>, type: GGUFBlockType, importance: UnsafeBufferPointer<Float>,
    into row: UnsafeMutableRawBufferPointer
  ) {
    var sumSquares: Float = 0
    for value in x { sumSquares += value * value }
    let sigma2 = sumSquares / Float(x.count)
    let nmax: Int32 = type == .q5_0 ? 16 : 8
    var weight = [Float](repeating: 0, count: 32)
    var codes = [Int32](repeating: 0, count: 32)
    for block in 0..<(x.count / 32) {
      let values = UnsafeBufferPointer(rebasing: x[(block * 32)..<(block * 32 + 32)])
      for j in 0..<32 { weight[j] = importance[block * 32 + j] * (sigma2 + values[j] * values[j]).squareRoot() }
      let d = makeQXQuants(values, nmax: nmax, weights: weight, codes: &codes)
      let target = UnsafeMutableRawBufferPointer(rebasing: row[(block * type.blockBytes)..<((block + 1) * type.blockBytes)])
      storeHalf(d, into: target, at: 0)
      if type == .q5_0 {
        var qh: UInt32 = 0
        for j in 0..<16 {
          let low = Int(codes[j])
          let high = Int(codes[j + 16])
          target[6 + j] = UInt8(low & 0x0F) | (UInt8(high & 0x0F) << 4)
          qh |= highBits(low, high, at: j)
        }
        target.storeBytes(of: qh.littleEndian, toByteOffset: 2, as: UInt32.self)
      } else {
        for j in 0..<16 { target[2 + j] = UInt8(codes[j]) | (UInt8(codes[j + 16]) << 4) }
      }
    }
  }

  /// ggml's `make_qx_quants(n, nmax, x, L, rmse_type = 1, qw)`: codes in [0, 2 nmax) for
  /// x ≈ scale * (code - nmax), and the scale. The first guess and 18 others
  /// (-(nmax + 0.1 is) / max for is in ±1…±9) are tried; each one's least-squares scale is
  /// kept when it lowers the weighted error.
  static func makeQXQuants(
    _ x: UnsafeBufferPointer<Float>, nmax: Int32, weights: [Float], codes: inout [Int32]
  ) -> Float {
    var largest: Float = 0
    var largestMagnitude: Float = 0
    for value in x where abs(value) > largestMagnitude {
      largestMagnitude = abs(value)
      largest = value
    }
    if largestMagnitude < 1e-15 {
      for i in 0..<x.count { codes[i] = 0 }
      return 0
    }
    @inline(__always) func code(_ iscale: Float, _ value: Float) -> Int32 {
      max(-nmax, min(nmax - 1, nearestInt(iscale * value)))
    }
    var iscale = -Float(nmax) / largest
    var sumLX: Float = 0
    var sumL2: Float = 0
    for i in 0..<x.count {
      let l = code(iscale, x[i])
      codes[i] = l + nmax
      let w = weights[i]
      sumLX += w * x[i] * Float(l)
      sumL2 += w * Float(l) * Float(l)
    }
    var scale: Float = sumL2 != 0 ? sumLX / sumL2 : 0
    var best = scale * sumLX
    for step in -9...9 where step != 0 {
      iscale = -(Float(nmax) + 0.1 * Float(step)) / largest
      sumLX = 0
      sumL2 = 0
      for i in 0..<x.count {
        let l = code(iscale, x[i])
        let w = weights[i]
        sumLX += w * x[i] * Float(l)
        sumL2 += w * Float(l) * Float(l)
      }
      if sumL2 > 0 && sumLX * sumLX > best * sumL2 {
        for i in 0..<x.count { codes[i] = nmax + code(iscale, x[i]) }
        scale = sumLX / sumL2
        best = scale * sumLX
      }
    }
    return scale
  }
}
