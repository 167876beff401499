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
    var codes = [UInt8](repeating: 0, count: 32)
    var trial = [UInt8](repeating: 0, count: 32)
    var signedCodes = [Int8](repeating: 0, count: 32)
    for block in 0..<(x.count / 32) {
      let values = UnsafeBufferPointer(rebasing: x[(block * 32)..<(block * 32 + 32)])
      for j in 0..<32 { weight[j] = importance[block * 32 + j] * (sigma2 + values[j] * values[j]).squareRoot() }
      let target = UnsafeMutableRawBufferPointer(rebasing: row[(block * type.blockBytes)..<((block + 1) * type.blockBytes)])
      switch type {
      case .q4_1, .q5_1:
        // ggml's make_qkx3_quants(32, nmax, x, weights, L, &the_min, Laux, -0.9, 0.05, 36, false):
        // with weights given, the arithmetic of make_qkx2_quants.
        let (d, minimum) = weight.withUnsafeBufferPointer { weights in
          codes.withUnsafeMutableBufferPointer { codes in
            trial.withUnsafeMutableBufferPointer { trial in
              makeQKX2Quants(
                count: 32, maxCode: type == .q5_1 ? 31 : 15, x: values.baseAddress!, weights: weights.baseAddress!,
                codes: codes.baseAddress!, scratch: trial.baseAddress!, rangeMin: -0.9, rangeDelta: 0.05, steps: 36,
                useAbsoluteError: false)
            }
          }
        }
        storeHalf(d, into: target, at: 0)
        storeHalf(-minimum, into: target, at: 2)
        if type == .q5_1 {
          storeFiveBitCodes({ Int(codes[$0]) }, into: target, highBitsAt: 4, quantsAt: 8)
        } else {
          storeFourBitCodes({ codes[$0] }, into: target, at: 4)
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
}
