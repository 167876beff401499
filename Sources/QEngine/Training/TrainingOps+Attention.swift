import QCompute

/// Rotary embedding and causal grouped-query attention, forward and backward.
extension TrainingOps {
  /// Rotates each head's halves by the angles of each row's position:
  /// `(a, b) -> (a cos - b sin, b cos + a sin)`; `inverse` rotates back, which is the backward.
  ///
  /// `cos`/`sin` are `[rows, headDimension / 2]`.
  static func rotate<T: TrainingScalar>(
    _ x: inout [T], rows: Int, heads: Int, headDimension: Int, cos: [T], sin: [T], inverse: Bool = false
  ) {
    let half = headDimension / 2
    let width = heads * headDimension
    for row in 0..<rows {
      for head in 0..<heads {
        let base = row &* width &+ head &* headDimension
        for index in 0..<half {
          let a = x[base &+ index]
          let b = x[base &+ half &+ index]
          let c = cos[row &* half &+ index]
          let s = inverse ? -sin[row &* half &+ index] : sin[row &* half &+ index]
          x[base &+ index] = a * c - b * s
          x[base &+ half &+ index] = b * c + a * s
        }
      }
    }
  }

  /// The shape of one causal attention call over consecutive sequences stacked as rows.
  struct AttentionShape: Sendable {
    var lengths: [Int]
    var heads: Int
    var keyValueHeads: Int
    var headDimension: Int
    /// Multiplies `q kᵀ`; `nil` for `1 / sqrt(headDimension)`.
    var scale: Double? = nil
    /// Keys a query sees, itself included; `nil` for all earlier ones.
    var window: Int? = nil
    /// Scores become `cap tanh(s / cap)` before the mask.
    var softcap: Double? = nil

    var rows: Int { lengths.reduce(0, +) }
    var queryWidth: Int { heads * headDimension }
    var keyWidth: Int { keyValueHeads * headDimension }
    var group: Int { heads / keyValueHeads }
  }

  /// Copies head `head` (columns `head*d ..< (head+1)*d`) of rows `start ..< start+count`.
  static func gatherHead<T: TrainingScalar>(_ x: [T], width: Int, head: Int, headDimension d: Int, start: Int, count: Int) -> [T] {
    var out = [T](repeating: 0, count: count * d)
    for row in 0..<count {
      let from = (start &+ row) &* width &+ head &* d
      for index in 0..<d { out[row &* d &+ index] = x[from &+ index] }
    }
    return out
  }

  static func scatterHead<T: TrainingScalar>(
    _ values: [T], into x: inout [T], width: Int, head: Int, headDimension d: Int, start: Int, count: Int, accumulate: Bool
  ) {
    for row in 0..<count {
      let to = (start &+ row) &* width &+ head &* d
      for index in 0..<d {
        if accumulate { x[to &+ index] += values[row &* d &+ index] } else { x[to &+ index] = values[row &* d &+ index] }
      }
    }
  }

  /// `softmax(softcap(scale q kᵀ) + causal mask) v` per sequence and head, the mask limited to
  /// the shape's window; keys and values of head `h / group` serve query head `h`. Returns the
  /// output `[rows, heads*d]` and the attention probabilities, per sequence then head,
  /// `[length, length]` each.
  static func attention<T: TrainingScalar>(
    queries: [T], keys: [T], values: [T], shape: AttentionShape
  ) throws -> (output: [T], probabilities: [[T]]) {
    let d = shape.headDimension
    let scale = shape.scale.map { T($0) } ?? 1 / T(d).squareRoot()
    var output = [T](repeating: 0, count: shape.rows * shape.queryWidth)
    var probabilities: [[T]] = []
    var start = 0
    for length in shape.lengths {
      for head in 0..<shape.heads {
        let kvHead = head / shape.group
        let q = gatherHead(queries, width: shape.queryWidth, head: head, headDimension: d, start: start, count: length)
        let k = gatherHead(keys, width: shape.keyWidth, head: kvHead, headDimension: d, start: start, count: length)
        let v = gatherHead(values, width: shape.keyWidth, head: kvHead, headDimension: d, start: start, count: length)
        var scores = [T](repeating: 0, count: length * length)
        try gemm(q, rows: length, columns: d, k, rows: length, columns: d, transposeB: true, into: &scores, alpha: scale)
        if let cap = shape.softcap { softcap(&scores, cap: T(cap)) }
        causalSoftmax(&scores, rows: length, window: shape.window)
        var o = [T](repeating: 0, count: length * d)
        try gemm(scores, rows: length, columns: length, v, rows: length, columns: d, into: &o)
        scatterHead(o, into: &output, width: shape.queryWidth, head: head, headDimension: d, start: start, count: length, accumulate: false)
        probabilities.append(scores)
      }
      start += length
    }
    return (output, probabilities)
  }

  /// Softmax of row `i` over its first `i + 1` entries, of which the last `window` when there
  /// is one; the rest become 0.
  static func causalSoftmax<T: TrainingScalar>(_ scores: inout [T], rows: Int, window: Int? = nil) {
    scores.withUnsafeMutableBufferPointer { buffer in
      guard let base = buffer.baseAddress else { return }
      let shared = SendableMutablePointer(base)
      forEachRowBlock(rows: rows, elementsPerRow: rows, minimumElementsPerBlock: engineBlockElements) { range in
        for row in range {
          let scores = shared.pointer + row &* rows
          let first = window.map { max(0, row &+ 1 &- $0) } ?? 0
          var largest = -T.infinity
          for index in first...row { largest = max(largest, scores[index]) }
          var sum: T = 0
          for index in first...row {
            let value = T.exp(scores[index] - largest)
            scores[index] = value
            sum += value
          }
          let inverse = 1 / sum
          for index in 0..<first { scores[index] = 0 }
          for index in first...row { scores[index] *= inverse }
          for index in (row + 1)..<rows { scores[index] = 0 }
        }
      }
    }
  }

  /// `dS = P ∘ (dP - rowsum(dP ∘ P))` in place of `dP`, causal rows (masked entries, whose
  /// `P` is 0, get 0).
  static func softmaxBackward<T: TrainingScalar>(_ dS: inout [T], probabilities p: [T], rows length: Int) {
    p.withUnsafeBufferPointer { p in
      dS.withUnsafeMutableBufferPointer { buffer in
        guard let base = buffer.baseAddress else { return }
        let shared = SendableMutablePointer(base)
        forEachRowBlock(rows: length, elementsPerRow: length, minimumElementsPerBlock: engineBlockElements) { range in
          for row in range {
            let start = row &* length
            let dS = shared.pointer + start
            var dot: T = 0
            for column in 0...row { dot += dS[column] * p[start &+ column] }
            for column in 0...row { dS[column] = p[start &+ column] * (dS[column] - dot) }
            for column in (row + 1)..<length { dS[column] = 0 }
          }
        }
      }
    }
  }

  /// Gradients of `attention` with respect to queries, keys and values:
  /// `dP = dO Vᵀ`, `dV = Pᵀ dO`, `dS = P ∘ (dP - rowsum(dP ∘ P))`, `dQ = dS K s`, `dK = dSᵀ Q s`;
  /// with soft-capping, `dS` is first multiplied by `1 - tanh²`, the scores recomputed.
  static func attentionBackward<T: TrainingScalar>(
    _ dOutput: [T], queries: [T], keys: [T], values: [T], probabilities: [[T]], shape: AttentionShape
  ) throws -> (queries: [T], keys: [T], values: [T]) {
    let d = shape.headDimension
    let scale = shape.scale.map { T($0) } ?? 1 / T(d).squareRoot()
    var dQueries = [T](repeating: 0, count: shape.rows * shape.queryWidth)
    var dKeys = [T](repeating: 0, count: shape.rows * shape.keyWidth)
    var dValues = dKeys
    var start = 0
    var index = 0
    for length in shape.lengths {
      for head in 0..<shape.heads {
        let kvHead = head / shape.group
        let p = probabilities[index]
        index += 1
        let q = gatherHead(queries, width: shape.queryWidth, head: head, headDimension: d, start: start, count: length)
        let k = gatherHead(keys, width: shape.keyWidth, head: kvHead, headDimension: d, start: start, count: length)
        let v = gatherHead(values, width: shape.keyWidth, head: kvHead, headDimension: d, start: start, count: length)
        let dO = gatherHead(dOutput, width: shape.queryWidth, head: head, headDimension: d, start: start, count: length)
        var dV = [T](repeating: 0, count: length * d)
        try gemm(p, rows: length, columns: length, transposeA: true, dO, rows: length, columns: d, into: &dV)
        var dS = [T](repeating: 0, count: length * length)
        try gemm(dO, rows: length, columns: d, v, rows: length, columns: d, transposeB: true, into: &dS)
        softmaxBackward(&dS, probabilities: p, rows: length)
        if let cap = shape.softcap {
          var capped = [T](repeating: 0, count: length * length)
          try gemm(q, rows: length, columns: d, k, rows: length, columns: d, transposeB: true, into: &capped, alpha: scale)
          softcap(&capped, cap: T(cap))
          softcapBackward(&dS, outputs: capped, cap: T(cap))
        }
        var dQ = [T](repeating: 0, count: length * d)
        try gemm(dS, rows: length, columns: length, k, rows: length, columns: d, into: &dQ, alpha: scale)
        var dK = [T](repeating: 0, count: length * d)
        try gemm(dS, rows: length, columns: length, transposeA: true, q, rows: length, columns: d, into: &dK, alpha: scale)
        scatterHead(dQ, into: &dQueries, width: shape.queryWidth, head: head, headDimension: d, start: start, count: length, accumulate: false)
        scatterHead(dK, into: &dKeys, width: shape.keyWidth, head: kvHead, headDimension: d, start: start, count: length, accumulate: true)
        scatterHead(dV, into: &dValues, width: shape.keyWidth, head: kvHead, headDimension: d, start: start, count: length, accumulate: true)
      }
      start += length
    }
    return (dQueries, dKeys, dValues)
  }
}
