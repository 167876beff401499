import Dispatch
import QCompute
import QFormats

/// The weight of a linear layer, `rows` outputs by `columns` inputs, dense or low-bit.
///
/// Many input rows multiply through BLAS: the quantized case rebuilds a tile of rows at a time
/// into a small buffer and multiplies that, so memory holds the packed codes plus one tile.
/// A few input rows (a decoding step) multiply straight from the packed codes.
public enum LinearWeight: Sendable {
  case dense(rows: Int, columns: Int, values: [Float])
  case quantized(QuantizedWeight)

  /// Floats in one dequantized tile: about 512 KB, which stays in a core's L2 cache.
  static let tileElements = 131_072

  public var rows: Int {
    switch self {
    case .dense(let rows, _, _): rows
    case .quantized(let weight): weight.rows
    }
  }

  public var columns: Int {
    switch self {
    case .dense(_, let columns, _): columns
    case .quantized(let weight): weight.columns
    }
  }

  /// Several weights applied to the same input: in one parallel region when all of them are
  /// low-bit and the input is a decoding step's few rows (`QuantizedWeight.applyFused`), one
  /// after another through `apply(_:tokens:into:)` otherwise.
  public static func apply(
    _ products: [(weight: LinearWeight, output: UnsafeMutableBufferPointer<Float>)],
    to input: UnsafeBufferPointer<Float>, tokens: Int
  ) throws {
    var fused: [(weight: QuantizedWeight, output: UnsafeMutableBufferPointer<Float>)] = []
    if tokens > 0, tokens <= QuantizedWeight.fusedTokenLimit {
      for (weight, output) in products {
        guard case .quantized(let quantized) = weight, input.count == tokens * quantized.columns,
          output.count == tokens * quantized.rows
        else { break }
        fused.append((quantized, output))
      }
    }
    if !fused.isEmpty, fused.count == products.count {
      QuantizedWeight.applyFused(fused, to: input, tokens: tokens)
    } else {
      for (weight, output) in products { try weight.apply(input, tokens: tokens, into: output) }
    }
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
    switch self {
    case .dense(_, _, let values) where tokens <= QuantizedWeight.fusedTokenLimit:
      // A decoding step: one pass over the weight, without the packing pass GEMM makes.
      values.withUnsafeBufferPointer {
        Self.applyDenseFew($0, rows: rows, columns: columns, input, tokens: tokens, into: output)
      }
    case .dense(_, _, let values):
      try values.withUnsafeBufferPointer { weight in
        try Linalg.gemm(
          input, rows: tokens, columns: columns, weight, rows: rows, columns: columns, transposeB: true,
          into: output)
      }
    case .quantized(let weight) where tokens <= QuantizedWeight.fusedTokenLimit:
      weight.applyFused(input, tokens: tokens, into: output)
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
    case .quantized(let weight): weight.dequantized()
    }
  }

  /// Bytes the weight occupies in memory.
  public var residentBytes: Int {
    switch self {
    case .dense(_, _, let values): values.count * 4
    case .quantized(let weight): weight.codes.count + 4 * (weight.scales.count + weight.offsets.count)
    }
  }
}

extension QuantizedWeight {
  /// `Y = X Wᵀ`, dequantizing `tileElements / columns` rows at a time.
  ///
  /// The two halves of a tile are rebuilt on two threads, then BLAS (itself threaded) multiplies
  /// it; the two never run at once, so the cores are not oversubscribed.
  func apply(
    _ input: UnsafeBufferPointer<Float>, tokens: Int, into output: UnsafeMutableBufferPointer<Float>,
    tileElements: Int
  ) throws {
    let tileRows = max(1, min(rows, tileElements / max(columns, 1)))
    let tile = UnsafeMutableBufferPointer<Float>.allocate(capacity: tileRows * columns)
    defer { tile.deallocate() }
    let product = UnsafeMutableBufferPointer<Float>.allocate(capacity: tokens * tileRows)
    defer { product.deallocate() }
    let scratch = UnsafeMutablePointer<UInt8>.allocate(capacity: 2 * max(columns, 1))
    defer { scratch.deallocate() }
    let columns = self.columns
    let rows = self.rows
    nonisolated(unsafe) let tileBase = tile.baseAddress!
    nonisolated(unsafe) let scratchBase = scratch
    for start in stride(from: 0, to: rows, by: tileRows) {
      let count = min(tileRows, rows - start)
      if count >= 16 {
        let half = count / 2
        DispatchQueue.concurrentPerform(iterations: 2) { part in
          let range = part == 0 ? start..<(start + half) : (start + half)..<(start + count)
          dequantizeRows(
            range, into: tileBase + (range.lowerBound - start) * columns,
            scratch: scratchBase + part * columns)
        }
      } else {
        dequantizeRows(start..<(start + count), into: tileBase, scratch: scratchBase)
      }
      let weights = UnsafeBufferPointer(rebasing: tile[0..<(count * columns)])
      if tokens == 1 {
        try Linalg.gemm(
          input, rows: 1, columns: columns, weights, rows: count, columns: columns, transposeB: true,
          into: UnsafeMutableBufferPointer(rebasing: output[start..<(start + count)]))
      } else {
        let result = UnsafeMutableBufferPointer(rebasing: product[0..<(tokens * count)])
        try Linalg.gemm(
          input, rows: tokens, columns: columns, weights, rows: count, columns: columns, transposeB: true,
          into: result)
        for token in 0..<tokens {
          let target = output.baseAddress! + token * rows + start
          target.update(from: result.baseAddress! + token * count, count: count)
        }
      }
    }
  }
}
