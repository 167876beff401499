import Dispatch
import Foundation

/// One weight's share of a decoding step: its output rows, the work they hold, and how to
/// compute a block of them (each block writes only its own outputs).
struct _RowProduct {
  let rows: Int
  let work: Int
  let body: @Sendable (Range<Int>) -> Void
  /// Frees what was prepared for `body` (a quantized copy of the input); runs after all blocks.
  let release: () -> Void

  /// Work a block of rows must hold before a second thread is worth waking.
  static let workPerBlock = 32_768

  /// Runs `products` in one parallel region: each split into at most four blocks per core, so
  /// a decoding step wakes and joins the other cores once for all of them.
  static func run(_ products: [_RowProduct]) {
    defer { for product in products { product.release() } }
    let cores = max(1, ProcessInfo.processInfo.activeProcessorCount)
    var blocks: [(product: Int, rows: Range<Int>)] = []
    for (index, product) in products.enumerated() where product.rows > 0 {
      let count = max(1, min(product.rows, min(product.work / workPerBlock, 4 * cores)))
      let rowsPerBlock = (product.rows + count - 1) / count
      for start in stride(from: 0, to: product.rows, by: rowsPerBlock) {
        blocks.append((index, start..<min(product.rows, start + rowsPerBlock)))
      }
    }
    guard !blocks.isEmpty else { return }
    let plan = blocks
    let bodies = products.map(\.body)
    let body = { @Sendable (block: Int) in bodies[plan[block].product](plan[block].rows) }
    if plan.count == 1 {
      body(0)
    } else {
      DispatchQueue.concurrentPerform(iterations: plan.count, execute: body)
    }
  }
}

extension LinearWeight {
  /// The few-token product of this weight with `input` into `output`, prepared for `_RowProduct.run`.
  /// The caller has checked that the buffers hold `tokens` rows.
  func fewTokenProduct(
    _ input: UnsafeBufferPointer<Float>, tokens: Int, into output: UnsafeMutableBufferPointer<Float>
  ) -> _RowProduct {
    let rows = self.rows
    let columns = self.columns
    let none = _RowProduct(rows: 0, work: 0, body: { _ in }, release: {})
    guard tokens > 0, rows > 0, let outputBase = output.baseAddress else { return none }
    guard columns > 0, let inputBase = input.baseAddress else {
      output.update(repeating: 0)
      return none
    }
    let x = _SendablePointer(base: UnsafeMutablePointer(mutating: inputBase))
    let y = _SendablePointer(base: outputBase)
    let work = rows * columns * tokens
    switch self {
    case .dense(_, _, let values):
      return _RowProduct(
        rows: rows, work: work,
        body: { range in
          values.withUnsafeBufferPointer {
            Self.denseDotRows(range, $0.baseAddress!, columns: columns, rows: rows, x.base, tokens: tokens, y.base)
          }
        }, release: {})
    case .half(let weight):
      return _RowProduct(
        rows: rows, work: work, body: { range in weight.dotRows(range, input: x.base, tokens: tokens, into: y.base) },
        release: {})
    case .quantized(let weight):
      return weight.fewTokenProduct(input, tokens: tokens, into: y)
    }
  }

  /// Rows `range` of `Y = X Wᵀ` for a dense weight: each output is one pass over a weight row
  /// with four SIMD8 accumulators. For a decoding step this reads the weight once, as BLAS's
  /// matrix-vector product does, without waking BLAS's own threads (which spin when the cores
  /// are busy).
  static func denseDotRows(
    _ range: Range<Int>, _ weights: UnsafePointer<Float>, columns: Int, rows: Int,
    _ input: UnsafeMutablePointer<Float>, tokens: Int, _ output: UnsafeMutablePointer<Float>
  ) {
    for row in range {
      let weightRow = UnsafeRawPointer(weights + row &* columns)
      for token in 0..<tokens {
        let inputRow = UnsafeRawPointer(input + token &* columns)
        var a0 = SIMD8<Float>()
        var a1 = SIMD8<Float>()
        var a2 = SIMD8<Float>()
        var a3 = SIMD8<Float>()
        var offset = 0
        let stride = MemoryLayout<SIMD8<Float>>.stride
        while offset &+ 32 <= columns {
          let byte = offset &* 4
          a0 += weightRow.loadUnaligned(fromByteOffset: byte, as: SIMD8<Float>.self)
            * inputRow.loadUnaligned(fromByteOffset: byte, as: SIMD8<Float>.self)
          a1 += weightRow.loadUnaligned(fromByteOffset: byte &+ stride, as: SIMD8<Float>.self)
            * inputRow.loadUnaligned(fromByteOffset: byte &+ stride, as: SIMD8<Float>.self)
          a2 += weightRow.loadUnaligned(fromByteOffset: byte &+ 2 &* stride, as: SIMD8<Float>.self)
            * inputRow.loadUnaligned(fromByteOffset: byte &+ 2 &* stride, as: SIMD8<Float>.self)
          a3 += weightRow.loadUnaligned(fromByteOffset: byte &+ 3 &* stride, as: SIMD8<Float>.self)
            * inputRow.loadUnaligned(fromByteOffset: byte &+ 3 &* stride, as: SIMD8<Float>.self)
          offset &+= 32
        }
        while offset &+ 8 <= columns {
          let byte = offset &* 4
          a0 += weightRow.loadUnaligned(fromByteOffset: byte, as: SIMD8<Float>.self)
            * inputRow.loadUnaligned(fromByteOffset: byte, as: SIMD8<Float>.self)
          offset &+= 8
        }
        var sum = ((a0 + a1) + (a2 + a3)).sum()
        let weightFloats = weights + row &* columns
        let inputFloats = input + token &* columns
        while offset < columns {
          sum += weightFloats[offset] * inputFloats[offset]
          offset &+= 1
        }
        output[token &* rows &+ row] = sum
      }
    }
  }
}
