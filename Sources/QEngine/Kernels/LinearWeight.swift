import Dispatch
import QCompute
import QFormats

/// The weight of a linear layer, `rows` outputs by `columns` inputs: floats, 16-bit floats kept
/// as the checkpoint stores them, or low-bit codes.
///
/// Many input rows multiply through BLAS: the 16-bit and quantized cases rebuild a tile of rows
/// at a time into a small buffer and multiply that, so memory holds the weight as stored plus
/// one tile. A few input rows (a decoding step) multiply straight from the stored form.
public enum LinearWeight: Sendable {
  case dense(rows: Int, columns: Int, values: [Float])
  case half(HalfWeight)
  case quantized(QuantizedWeight)

  /// Floats in one rebuilt tile of low-bit codes: about 512 KB, which stays in a core's L2 cache.
  static let tileElements = 131_072

  /// Floats in one widened tile of 16-bit weights: 4 MB, so that most matrices of a small model
  /// widen into one tile and BLAS packs the input once per product, not once per tile, which
  /// costs more than widening does.
  static let halfTileElements = 1 << 20

  /// Most input rows the few-token products take; longer inputs go through tiles and BLAS,
  /// where rebuilding a tile once pays for itself.
  static let fewTokenLimit = 8

  public var rows: Int {
    switch self {
    case .dense(let rows, _, _): rows
    case .half(let weight): weight.rows
    case .quantized(let weight): weight.rows
    }
  }

  public var columns: Int {
    switch self {
    case .dense(_, let columns, _): columns
    case .half(let weight): weight.columns
    case .quantized(let weight): weight.columns
    }
  }

  /// Several weights applied to the same input. A decoding step's few rows run in one parallel
  /// region for all of them (`_RowProduct.run`), so the other cores are woken and joined once
  /// instead of once per weight; longer inputs go one weight after another.
  public static func apply(
    _ products: [(weight: LinearWeight, output: UnsafeMutableBufferPointer<Float>)],
    to input: UnsafeBufferPointer<Float>, tokens: Int
  ) throws {
    let fits = products.allSatisfy { weight, output in
      input.count == tokens * weight.columns && output.count == tokens * weight.rows
    }
    guard tokens > 0, tokens <= fewTokenLimit, fits else {
      for (weight, output) in products { try weight.apply(input, tokens: tokens, into: output) }
      return
    }
    _RowProduct.run(products.map { $0.weight.fewTokenProduct(input, tokens: tokens, into: $0.output) })
  }

  /// `output[t, r] = sum_c input[t, c] * W[r, c]` for `tokens` rows of input: `Y = X Wᵀ`.
  /// - Throws: `DecoderError.invalidInput` when the buffers do not hold `tokens` rows.
  public func apply(
    _ input: UnsafeBufferPointer<Float>, tokens: Int, into output: UnsafeMutableBufferPointer<Float>
  ) throws {
    let rows = self.rows
    let columns = self.columns
    guard tokens >= 0, input.count == tokens * columns, output.count == tokens * rows else {
      throw DecoderError.invalidInput(
        operation: "linear",
        reason: "\(input.count) inputs and \(output.count) outputs for \(tokens) tokens through \(rows) x \(columns)")
    }
    if tokens == 0 || rows == 0 { return }
    if tokens <= Self.fewTokenLimit {
      // A decoding step: one pass over the weight, without the packing pass GEMM makes.
      _RowProduct.run([fewTokenProduct(input, tokens: tokens, into: output)])
      return
    }
    switch self {
    case .dense(_, _, let values):
      try values.withUnsafeBufferPointer { weight in
        try Linalg.gemm(
          input, rows: tokens, columns: columns, weight, rows: rows, columns: columns, transposeB: true,
          into: output)
      }
    case .half(let weight):
      try weight.apply(input, tokens: tokens, into: output, tileElements: Self.halfTileElements)
    case .quantized(let weight):
      try weight.apply(input, tokens: tokens, into: output, tileElements: Self.tileElements)
    }
  }

  /// Row `index` of the matrix (an embedding lookup) into `target` (`columns` floats).
  public func row(_ index: Int, into target: UnsafeMutableBufferPointer<Float>) {
    let columns = self.columns
    precondition(index >= 0 && index < rows && target.count == columns, "row out of range")
    guard columns > 0, let base = target.baseAddress else { return }
    switch self {
    case .dense(_, _, let values):
      values.withUnsafeBufferPointer { source in
        base.update(from: source.baseAddress! + index * columns, count: columns)
      }
    case .half(let weight):
      weight.widenRows(index..<(index + 1), into: base)
    case .quantized(let weight):
      let scratch = UnsafeMutablePointer<UInt8>.allocate(capacity: columns)
      defer { scratch.deallocate() }
      weight.dequantizeRows(index..<(index + 1), into: base, scratch: scratch)
    }
  }

  /// The whole matrix as floats.
  public func denseValues() -> [Float] {
    switch self {
    case .dense(_, _, let values): values
    case .half(let weight): weight.widened()
    case .quantized(let weight): weight.dequantized()
    }
  }

  /// Bytes the weight occupies in memory.
  public var residentBytes: Int {
    switch self {
    case .dense(_, _, let values): values.count * 4
    case .half(let weight): weight.values.count * 2
    case .quantized(let weight): weight.codes.count + 4 * (weight.scales.count + weight.offsets.count)
    }
  }
}

extension QuantizedWeight {
  /// `Y = X Wᵀ`, dequantizing `tileElements / columns` rows at a time (`LinearWeight.applyByTiles`).
  func apply(
    _ input: UnsafeBufferPointer<Float>, tokens: Int, into output: UnsafeMutableBufferPointer<Float>,
    tileElements: Int
  ) throws {
    let columns = self.columns
    try LinearWeight.applyByTiles(
      input, tokens: tokens, rows: rows, columns: columns, into: output, tileElements: tileElements
    ) { range, target in
      let scratch = UnsafeMutablePointer<UInt8>.allocate(capacity: max(columns, 1))
      defer { scratch.deallocate() }
      self.dequantizeRows(range, into: target, scratch: scratch)
    }
  }
}
