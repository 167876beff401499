import Dispatch
import QCompute

extension LinearWeight {
  /// `Y = X Wᵀ` for a weight not held as floats: `tileElements / columns` rows at a time are
  /// rebuilt by `rebuild` into a buffer that BLAS, itself threaded, then multiplies; memory
  /// holds one tile of floats beyond the weight. With `parallelRebuild` the two halves of a
  /// tile are rebuilt on two threads (worth it for unpacking codes, not for widening 16-bit
  /// floats, which costs less than waking a thread while BLAS's own threads still spin).
  static func applyByTiles(
    _ input: UnsafeBufferPointer<Float>, tokens: Int, rows: Int, columns: Int,
    into output: UnsafeMutableBufferPointer<Float>, tileElements: Int, parallelRebuild: Bool = true,
    rebuild: @escaping @Sendable (Range<Int>, UnsafeMutablePointer<Float>) -> Void
  ) throws {
    let tileRows = max(1, min(rows, tileElements / max(columns, 1)))
    let tile = UnsafeMutableBufferPointer<Float>.allocate(capacity: tileRows * columns)
    defer { tile.deallocate() }
    // Products of a tile of several tokens are gathered here, then copied to their columns.
    let product = UnsafeMutableBufferPointer<Float>.allocate(
      capacity: tokens > 1 && tileRows < rows ? tokens * tileRows : 0)
    defer { product.deallocate() }
    let tileBase = _SendablePointer(base: tile.baseAddress!)
    for start in stride(from: 0, to: rows, by: tileRows) {
      let count = min(tileRows, rows - start)
      if parallelRebuild && count >= 16 {
        let half = count / 2
        DispatchQueue.concurrentPerform(iterations: 2) { part in
          let range = part == 0 ? start..<(start + half) : (start + half)..<(start + count)
          rebuild(range, tileBase.base + (range.lowerBound - start) * columns)
        }
      } else {
        rebuild(start..<(start + count), tileBase.base)
      }
      let weights = UnsafeBufferPointer(rebasing: tile[0..<(count * columns)])
      if tokens == 1 || count == rows {
        // One output row, or one tile for the whole matrix: the product lands in place.
        try Linalg.gemm(
          input, rows: tokens, columns: columns, weights, rows: count, columns: columns, transposeB: true,
          into: tokens == 1 ? UnsafeMutableBufferPointer(rebasing: output[start..<(start + count)]) : output)
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
