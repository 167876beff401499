import Dispatch
import QCompute

extension LinearWeight {
  /// `Y = X Wᵀ` for a weight not held as floats: `tileElements / columns` rows at a time are
  /// rebuilt by `rebuild` (the two halves of a tile on two threads) into a buffer that BLAS,
  /// itself threaded, then multiplies. The two never run at once, so the cores are not
  /// oversubscribed, and memory holds one tile of floats beyond the weight.
  static func applyByTiles(
    _ input: UnsafeBufferPointer<Float>, tokens: Int, rows: Int, columns: Int,
    into output: UnsafeMutableBufferPointer<Float>, tileElements: Int,
    rebuild: @escaping @Sendable (Range<Int>, UnsafeMutablePointer<Float>) -> Void
  ) throws {
    let tileRows = max(1, min(rows, tileElements / max(columns, 1)))
    let tile = UnsafeMutableBufferPointer<Float>.allocate(capacity: tileRows * columns)
    defer { tile.deallocate() }
    let product = UnsafeMutableBufferPointer<Float>.allocate(capacity: tokens * tileRows)
    defer { product.deallocate() }
    let tileBase = _SendablePointer(base: tile.baseAddress!)
    for start in stride(from: 0, to: rows, by: tileRows) {
      let count = min(tileRows, rows - start)
      if count >= 16 {
        let half = count / 2
        DispatchQueue.concurrentPerform(iterations: 2) { part in
          let range = part == 0 ? start..<(start + half) : (start + half)..<(start + count)
          rebuild(range, tileBase.base + (range.lowerBound - start) * columns)
        }
      } else {
        rebuild(start..<(start + count), tileBase.base)
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
