import Dispatch
import Foundation

extension LinearWeight {
  /// `Y = X Wᵀ` of a dense weight for a few rows of `X`, output rows split across the cores:
  /// each output is one pass over a weight row with four SIMD8 accumulators. For a decoding
  /// step this reads the weight once, as BLAS's matrix-vector product does, without waking
  /// BLAS's own threads (which spin when the cores are busy).
  static func applyDenseFew(
    _ values: UnsafeBufferPointer<Float>, rows: Int, columns: Int, _ input: UnsafeBufferPointer<Float>,
    tokens: Int, into output: UnsafeMutableBufferPointer<Float>
  ) {
    guard tokens > 0, rows > 0, let outputBase = output.baseAddress else { return }
    guard columns > 0, let inputBase = input.baseAddress, let weightBase = values.baseAddress else {
      output.update(repeating: 0)
      return
    }
    let work = rows * columns * tokens
    let cores = max(1, ProcessInfo.processInfo.activeProcessorCount)
    let blocks = max(1, min(rows, min(work / QuantizedWeight.fusedCodesPerBlock, 4 * cores)))
    let rowsPerBlock = (rows + blocks - 1) / blocks
    let blockCount = (rows + rowsPerBlock - 1) / rowsPerBlock
    let target = _SendablePointer(base: outputBase)
    let x = _SendablePointer(base: UnsafeMutablePointer(mutating: inputBase))
    let w = _SendablePointer(base: UnsafeMutablePointer(mutating: weightBase))
    let body = { @Sendable (block: Int) in
      let start = block * rowsPerBlock
      for row in start..<min(rows, start + rowsPerBlock) {
        let weightRow = UnsafeRawPointer(w.base + row &* columns)
        for token in 0..<tokens {
          let inputRow = UnsafeRawPointer(x.base + token &* columns)
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
          let weightFloats = w.base + row &* columns
          let inputFloats = x.base + token &* columns
          while offset < columns {
            sum += weightFloats[offset] * inputFloats[offset]
            offset &+= 1
          }
          target.base[token &* rows &+ row] = sum
        }
      }
    }
    if blockCount == 1 {
      body(0)
    } else {
      DispatchQueue.concurrentPerform(iterations: blockCount, execute: body)
    }
  }
}
