import QCompute

/// Forward and backward passes of the decoder's layers on row-major arrays.
///
/// Each forward returns what its backward needs; backwards accumulate weight gradients into
/// the caller's buffers (`+=`), so tied weights and batches add up without extra copies.
enum TrainingOps {
  /// `c = alpha op(a) op(b) + beta c` through BLAS.
  static func gemm<T: TrainingScalar>(
    _ a: [T], rows aRows: Int, columns aColumns: Int, transposeA: Bool = false,
    _ b: [T], rows bRows: Int, columns bColumns: Int, transposeB: Bool = false,
    into c: inout [T], alpha: T = 1, beta: T = 0
  ) throws {
    try a.withUnsafeBufferPointer { a in
      try b.withUnsafeBufferPointer { b in
        try c.withUnsafeMutableBufferPointer { c in
          try Linalg.gemm(
            a, rows: aRows, columns: aColumns, transposeA: transposeA, b, rows: bRows, columns: bColumns,
            transposeB: transposeB, into: c, alpha: alpha, beta: beta)
        }
      }
    }
  }

  // MARK: Embedding

  /// Rows of `table` (`[vocabulary, width]`) for `tokens`.
  static func embed<T: TrainingScalar>(_ table: [T], width: Int, tokens: [Int]) -> [T] {
    var out = [T](repeating: 0, count: tokens.count * width)
    for (row, token) in tokens.enumerated() {
      for index in 0..<width { out[row &* width &+ index] = table[token &* width &+ index] }
    }
    return out
  }

  /// Scatter-adds the rows of `gradient` into the table gradient at `tokens`.
  static func embedBackward<T: TrainingScalar>(_ gradient: [T], width: Int, tokens: [Int], into table: inout [T]) {
    for (row, token) in tokens.enumerated() {
      for index in 0..<width { table[token &* width &+ index] += gradient[row &* width &+ index] }
    }
  }

  // MARK: Linear

  /// `y = x Wᵀ + b` with `x` `[rows, inputs]`, `W` `[outputs, inputs]`.
  static func linear<T: TrainingScalar>(
    _ x: [T], rows: Int, weight: [T], outputs: Int, inputs: Int, bias: [T]? = nil
  ) throws -> [T] {
    var y = [T](repeating: 0, count: rows * outputs)
    try gemm(x, rows: rows, columns: inputs, weight, rows: outputs, columns: inputs, transposeB: true, into: &y)
    if let bias {
      for row in 0..<rows {
        for index in 0..<outputs { y[row &* outputs &+ index] += bias[index] }
      }
    }
    return y
  }

  /// `dx = dy W`.
  static func linearInputGradient<T: TrainingScalar>(
    _ dy: [T], rows: Int, weight: [T], outputs: Int, inputs: Int
  ) throws -> [T] {
    var dx = [T](repeating: 0, count: rows * inputs)
    try gemm(dy, rows: rows, columns: outputs, weight, rows: outputs, columns: inputs, into: &dx)
    return dx
  }

  /// `dW += dyᵀ x`.
  static func accumulateWeightGradient<T: TrainingScalar>(
    _ dy: [T], x: [T], rows: Int, outputs: Int, inputs: Int, into dWeight: inout [T]
  ) throws {
    try gemm(
      dy, rows: rows, columns: outputs, transposeA: true, x, rows: rows, columns: inputs, into: &dWeight, beta: 1)
  }

  /// `db += Σ_rows dy`.
  static func accumulateBiasGradient<T: TrainingScalar>(_ dy: [T], rows: Int, outputs: Int, into dBias: inout [T]) {
    for row in 0..<rows {
      for index in 0..<outputs { dBias[index] += dy[row &* outputs &+ index] }
    }
  }

  /// The low-rank branch of a LoRA linear: adds `s (x Aᵀ) Bᵀ` to `y` and returns `h = x Aᵀ`.
  ///
  /// `A` is `[rank, inputs]`, `B` is `[outputs, rank]`.
  static func loraForward<T: TrainingScalar>(
    _ x: [T], rows: Int, a: [T], b: [T], rank: Int, outputs: Int, inputs: Int, scale: T, into y: inout [T]
  ) throws -> [T] {
    var h = [T](repeating: 0, count: rows * rank)
    try gemm(x, rows: rows, columns: inputs, a, rows: rank, columns: inputs, transposeB: true, into: &h)
    try gemm(h, rows: rows, columns: rank, b, rows: outputs, columns: rank, transposeB: true, into: &y, alpha: scale, beta: 1)
    return h
  }

  /// Gradients of the LoRA branch: `dA += (s dy B)ᵀ x`, `dB += s dyᵀ h`, and `dx += s dy B A`.
  static func loraBackward<T: TrainingScalar>(
    _ dy: [T], x: [T], hidden h: [T], rows: Int, a: [T], b: [T], rank: Int, outputs: Int, inputs: Int,
    scale: T, dA: inout [T], dB: inout [T], dx: inout [T]
  ) throws {
    var dh = [T](repeating: 0, count: rows * rank)
    try gemm(dy, rows: rows, columns: outputs, b, rows: outputs, columns: rank, into: &dh, alpha: scale)
    try gemm(dy, rows: rows, columns: outputs, transposeA: true, h, rows: rows, columns: rank, into: &dB, alpha: scale, beta: 1)
    try gemm(dh, rows: rows, columns: rank, transposeA: true, x, rows: rows, columns: inputs, into: &dA, beta: 1)
    try gemm(dh, rows: rows, columns: rank, a, rows: rank, columns: inputs, into: &dx, beta: 1)
  }

  // MARK: RMSNorm

  /// `y = x / sqrt(mean(x²) + ε) * w` per row; returns `y` and each row's inverse RMS.
  /// The mean of squares is summed in Double, as the inference engine does.
  static func rmsNorm<T: TrainingScalar>(
    _ x: [T], rows: Int, weight: [T], epsilon: Float
  ) -> (output: [T], inverseRMS: [T]) {
    let width = weight.count
    var y = [T](repeating: 0, count: rows * width)
    var inverses = [T](repeating: 0, count: rows)
    for row in 0..<rows {
      let base = row &* width
      var sum: Double = 0
      for index in 0..<width {
        let value = Double(x[base &+ index])
        sum += value * value
      }
      let inverse: T
      if T.self == Float.self {
        inverse = T(1 / (Float(sum / Double(width)) + epsilon).squareRoot())
      } else {
        inverse = T(1 / (sum / Double(width) + Double(epsilon)).squareRoot())
      }
      inverses[row] = inverse
      for index in 0..<width { y[base &+ index] = x[base &+ index] * inverse * weight[index] }
    }
    return (y, inverses)
  }

  /// `dx = r (g - x r² mean(g x))` with `g = dy w`, and `dw += Σ_rows dy x r`.
  static func rmsNormBackward<T: TrainingScalar>(
    _ dy: [T], x: [T], rows: Int, weight: [T], inverseRMS: [T], dWeight: inout [T]?
  ) -> [T] {
    let width = weight.count
    var dx = [T](repeating: 0, count: rows * width)
    for row in 0..<rows {
      let base = row &* width
      let r = inverseRMS[row]
      var dot: T = 0
      for index in 0..<width { dot += dy[base &+ index] * weight[index] * x[base &+ index] }
      let correction = r * r * dot / T(width)
      for index in 0..<width {
        let g = dy[base &+ index] * weight[index]
        dx[base &+ index] = r * (g - x[base &+ index] * correction)
      }
      if var weightGradient = dWeight.take() {
        for index in 0..<width { weightGradient[index] += dy[base &+ index] * x[base &+ index] * r }
        dWeight = weightGradient
      }
    }
    return dx
  }

  // MARK: Activations and residuals

  /// `silu(gate) * up`.
  static func swiGLU<T: TrainingScalar>(gate: [T], up: [T]) -> [T] {
    var out = [T](repeating: 0, count: gate.count)
    gate.withUnsafeBufferPointer { gate in
      up.withUnsafeBufferPointer { up in
        out.withUnsafeMutableBufferPointer { out in
          guard let base = out.baseAddress else { return }
          let target = SendableMutablePointer(base)
          forEachChunk(gate.count) { range in
            for index in range {
              let value = gate[index]
              target.pointer[index] = value / (1 + T.exp(-value)) * up[index]
            }
          }
        }
      }
    }
    return out
  }

  /// `silu(x) = x σ(x)`.
  static func silu<T: TrainingScalar>(_ x: [T]) -> [T] { x.map { $0 / (1 + T.exp(-$0)) } }

  /// `d silu(x) = dy σ(x) (1 + x (1 - σ(x)))`.
  static func siluBackward<T: TrainingScalar>(_ dy: [T], x: [T]) -> [T] {
    var dx = [T](repeating: 0, count: x.count)
    for index in x.indices {
      let sigma = 1 / (1 + T.exp(-x[index]))
      dx[index] = dy[index] * sigma * (1 + x[index] * (1 - sigma))
    }
    return dx
  }

  /// Gradients of `silu(gate) * up` with respect to `gate` and `up`.
  static func swiGLUBackward<T: TrainingScalar>(_ dy: [T], gate: [T], up: [T]) -> (gate: [T], up: [T]) {
    var dGate = [T](repeating: 0, count: gate.count)
    var dUp = dGate
    dy.withUnsafeBufferPointer { dy in
      gate.withUnsafeBufferPointer { gate in
        up.withUnsafeBufferPointer { up in
          dGate.withUnsafeMutableBufferPointer { dGate in
            dUp.withUnsafeMutableBufferPointer { dUp in
              guard let gateBase = dGate.baseAddress, let upBase = dUp.baseAddress else { return }
              let (gateOut, upOut) = (SendableMutablePointer(gateBase), SendableMutablePointer(upBase))
              forEachChunk(gate.count) { range in
                for index in range {
                  let g = gate[index]
                  let sigma = 1 / (1 + T.exp(-g))
                  upOut.pointer[index] = dy[index] * g * sigma
                  gateOut.pointer[index] = dy[index] * up[index] * sigma * (1 + g * (1 - sigma))
                }
              }
            }
          }
        }
      }
    }
    return (dGate, dUp)
  }

  /// `[rows, Σ widths]` row-major cut into `[rows, width]` blocks of consecutive columns: a fused
  /// projection's output (Phi-3's q|k|v, gate|up) split into its parts.
  static func splitColumns<T: TrainingScalar>(_ x: [T], rows: Int, widths: [Int]) -> [[T]] {
    let total = widths.reduce(0, +)
    precondition(x.count == rows * total, "splitColumns: \(x.count) values are not \(rows) rows of \(total)")
    var start = 0
    return widths.map { width in
      defer { start += width }
      var part = [T](repeating: 0, count: rows * width)
      for row in 0..<rows {
        for column in 0..<width { part[row &* width &+ column] = x[row &* total &+ start &+ column] }
      }
      return part
    }
  }

  /// The inverse of `splitColumns`: `[rows, width]` blocks side by side, the backward of the split.
  static func joinColumns<T: TrainingScalar>(_ parts: [[T]], rows: Int) -> [T] {
    let widths = parts.map { $0.count / max(rows, 1) }
    let total = widths.reduce(0, +)
    var x = [T](repeating: 0, count: rows * total)
    var start = 0
    for (part, width) in zip(parts, widths) {
      precondition(part.count == rows * width, "joinColumns: \(part.count) values are not \(rows) rows")
      for row in 0..<rows {
        for column in 0..<width { x[row &* total &+ start &+ column] = part[row &* width &+ column] }
      }
      start += width
    }
    return x
  }

  /// `target += source`: a residual add, whose backward passes the gradient to both branches.
  static func add<T: TrainingScalar>(_ source: [T], to target: inout [T]) {
    precondition(source.count == target.count, "add: \(source.count) values into \(target.count)")
    source.withUnsafeBufferPointer { source in
      target.withUnsafeMutableBufferPointer { target in
        guard let base = target.baseAddress else { return }
        let out = SendableMutablePointer(base)
        forEachChunk(source.count) { range in
          for index in range { out.pointer[index] += source[index] }
        }
      }
    }
  }

  /// Ranges given to `forEachChunk` start at multiples of this length.
  static let chunkLength = 4096

  /// Runs `body` over consecutive index ranges of `count` elements, split across the cores
  /// once there is enough work; each index is in exactly one range.
  static func forEachChunk(_ count: Int, _ body: (Range<Int>) -> Void) {
    let chunk = chunkLength
    forEachRowBlock(rows: (count + chunk - 1) / chunk, elementsPerRow: chunk, minimumElementsPerBlock: engineBlockElements) {
      blocks in
      body((blocks.lowerBound * chunk)..<min(count, blocks.upperBound * chunk))
    }
  }
}
