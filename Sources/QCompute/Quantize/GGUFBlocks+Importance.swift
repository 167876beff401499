/// Q4_0, Q4_1, Q5_0 and Q5_1 weighted by an importance matrix, as `llama-quantize --imatrix`
/// encodes them.
///
/// Without weights ggml rounds each block against its extremes (`encodeQ4_0`). With a per-column
/// importance (the mean squared activation `llama-imatrix` records) it follows
/// `quantize_row_q4_0_impl` and its siblings: every element of a row is weighted by
/// importance * sqrt(sigma² + x²), sigma² the row's mean square. The symmetric types take
/// `make_qx_quants` (19 scales around absmax / nmax, the one of least weighted squared error
/// kept), the ones with a minimum `make_qkx3_quants` (37 scales, each with its weighted
/// least-squares scale and minimum). The arithmetic is f32 in ggml's order, so the blocks are
/// ggml's own.
extension GGUFBlocks {
  /// The types whose encoder takes an importance matrix here.
  public static let importanceTypes: Set<GGUFBlockType> = [.q4_0, .q4_1, .q5_0, .q5_1]

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
    var weight = [Float](repeating: 0, count: 32)
    var codes = [Int32](repeating: 0, count: 32)
    var signedCodes = [Int8](repeating: 0, count: 32)
    for block in 0..<(x.count / 32) {
      let values = UnsafeBufferPointer(rebasing: x[(block * 32)..<(block * 32 + 32)])
      for j in 0..<32 { weight[j] = importance[block * 32 + j] * (sigma2 + values[j] * values[j]).squareRoot() }
      let target = UnsafeMutableRawBufferPointer(rebasing: row[(block * type.blockBytes)..<((block + 1) * type.blockBytes)])
      switch type {
      case .q4_1, .q5_1:
        let (d, minimum) = makeQKX3Quants(values, nmax: type == .q5_1 ? 31 : 15, weights: weight, codes: &codes)
        storeHalf(d, into: target, at: 0)
        storeHalf(-minimum, into: target, at: 2)
        if type == .q5_1 {
          storeFiveBitCodes({ Int(codes[$0]) }, into: target, highBitsAt: 4, quantsAt: 8)
        } else {
          storeFourBitCodes({ UInt8(codes[$0]) }, into: target, at: 4)
        }
      default:
        let d = weight.withUnsafeBufferPointer { weights in
          signedCodes.withUnsafeMutableBufferPointer {
            makeQXQuants(
              count: 32, maxCode: type == .q5_0 ? 16 : 8, x: values.baseAddress!, codes: $0.baseAddress!,
              weights: weights.baseAddress!)
          }
        }
        storeHalf(d, into: target, at: 0)
        if type == .q5_0 {
          storeFiveBitCodes({ Int(signedCodes[$0]) }, into: target, highBitsAt: 2, quantsAt: 6)
        } else {
          storeFourBitCodes({ UInt8(signedCodes[$0]) }, into: target, at: 2)
        }
      }
    }
  }

  /// ggml's `make_qkx3_quants(n, nmax, x, weights, L, &the_min, Laux, -0.9, 0.05, 36, false)`:
  /// codes in [0, nmax] for x ≈ scale * code - minimum. From the range's own grid, 37 stretched
  /// grids ((nmax - 0.9 + 0.05 is) / (max - min)) each get the weighted least-squares scale and
  /// minimum (the minimum held at or below zero); the one of least weighted squared error wins.
  /// Returns the scale and `the_min` (the negated minimum, as ggml stores `m = -the_min`).
  static func makeQKX3Quants(
    _ x: UnsafeBufferPointer<Float>, nmax: Int32, weights: [Float], codes: inout [Int32]
  ) -> (scale: Float, minimum: Float) {
    var low = x[0]
    var high = x[0]
    var sumW = weights[0]
    var sumX = sumW * x[0]
    for i in 1..<x.count {
      if x[i] < low { low = x[i] }
      if x[i] > high { high = x[i] }
      sumW += weights[i]
      sumX += weights[i] * x[i]
    }
    if low > 0 { low = 0 }
    if high <= low {
      for i in 0..<x.count { codes[i] = 0 }
      return (0, -low)
    }
    let levels = Float(nmax)
    var iscale = levels / (high - low)
    var scale = 1 / iscale
    var bestError: Float = 0
    for i in 0..<x.count {
      codes[i] = max(0, min(nmax, nearestInt(iscale * (x[i] - low))))
      let difference = scale * Float(codes[i]) + low - x[i]
      bestError += weights[i] * (difference * difference)
    }
    var trial = [Int32](repeating: 0, count: x.count)
    for step in 0...36 {
      iscale = (-0.9 + 0.05 * Float(step) + levels) / (high - low)
      var sumL: Float = 0
      var sumL2: Float = 0
      var sumXL: Float = 0
      for i in 0..<x.count {
        let l = max(0, min(nmax, nearestInt(iscale * (x[i] - low))))
        trial[i] = l
        let w = weights[i]
        sumL += w * Float(l)
        sumL2 += w * Float(l) * Float(l)
        sumXL += w * Float(l) * x[i]
      }
      let determinant = sumW * sumL2 - sumL * sumL
      guard determinant > 0 else { continue }
      var thisScale = (sumW * sumXL - sumX * sumL) / determinant
      var thisMinimum = (sumL2 * sumX - sumL * sumXL) / determinant
      if thisMinimum > 0 {
        thisMinimum = 0
        thisScale = sumXL / sumL2
      }
      var error: Float = 0
      for i in 0..<x.count {
        let difference = thisScale * Float(trial[i]) + thisMinimum - x[i]
        error += weights[i] * (difference * difference)
      }
      if error < bestError {
        for i in 0..<x.count { codes[i] = trial[i] }
        bestError = error
        scale = thisScale
        low = thisMinimum
      }
    }
    return (scale, -low)
  }
}
