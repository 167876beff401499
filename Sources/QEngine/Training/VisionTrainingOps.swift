import Foundation

/// The element types the ViT block graph runs in; adds the functions its GELUs need.
protocol VisionTrainingScalar: TrainingScalar {
  static func erf(_ value: Self) -> Self
  static func tanh(_ value: Self) -> Self
}

extension Float: VisionTrainingScalar {
  static func erf(_ value: Float) -> Float { Foundation.erf(value) }
  static func tanh(_ value: Float) -> Float { Foundation.tanh(value) }
}

extension Double: VisionTrainingScalar {
  static func erf(_ value: Double) -> Double { Foundation.erf(value) }
  static func tanh(_ value: Double) -> Double { Foundation.tanh(value) }
}

/// Forward and backward passes of a ViT block's own operations (layer norm with bias, the
/// GELUs, attention without a mask) on row-major arrays; linears come from `TrainingOps`.
enum VisionTrainingOps {
  // MARK: LayerNorm

  /// `y = (x - mean) / sqrt(var + ε) * w + b` per row (biased variance, as torch); returns `y`,
  /// the normalised rows `x̂` and each row's inverse standard deviation. Sums run in Double.
  static func layerNorm<T: VisionTrainingScalar>(
    _ x: [T], rows: Int, weight: [T], bias: [T], epsilon: Float
  ) -> (output: [T], normalized: [T], inverseStd: [T]) {
    let width = weight.count
    var y = [T](repeating: 0, count: rows * width)
    var normalized = y
    var inverses = [T](repeating: 0, count: rows)
    for row in 0..<rows {
      let base = row &* width
      var sum: Double = 0
      for index in 0..<width { sum += Double(x[base &+ index]) }
      let mean = sum / Double(width)
      var squares: Double = 0
      for index in 0..<width {
        let centred = Double(x[base &+ index]) - mean
        squares += centred * centred
      }
      let variance = squares / Double(width)
      let inverse: T
      let shift: T
      if T.self == Float.self {
        inverse = T(1 / (Float(variance) + epsilon).squareRoot())
        shift = T(Float(mean))
      } else {
        inverse = T(1 / (variance + Double(epsilon)).squareRoot())
        shift = T(mean)
      }
      inverses[row] = inverse
      for index in 0..<width {
        let n = (x[base &+ index] - shift) * inverse
        normalized[base &+ index] = n
        y[base &+ index] = n * weight[index] + bias[index]
      }
    }
    return (y, normalized, inverses)
  }

  /// `dx = r (g - mean(g) - x̂ mean(g x̂))` with `g = dy w`.
  static func layerNormBackward<T: VisionTrainingScalar>(
    _ dy: [T], normalized: [T], inverseStd: [T], weight: [T]
  ) -> [T] {
    let width = weight.count
    let rows = inverseStd.count
    var dx = [T](repeating: 0, count: rows * width)
    let count = T(width)
    for row in 0..<rows {
      let base = row &* width
      var sumG: T = 0
      var sumGN: T = 0
      for index in 0..<width {
        let g = dy[base &+ index] * weight[index]
        sumG += g
        sumGN += g * normalized[base &+ index]
      }
      let meanG = sumG / count
      let meanGN = sumGN / count
      let r = inverseStd[row]
      for index in 0..<width {
        let g = dy[base &+ index] * weight[index]
        dx[base &+ index] = r * (g - meanG - normalized[base &+ index] * meanGN)
      }
    }
    return dx
  }

  // MARK: Activations

  static let tanhGELUScale = 0.797_884_560_802_865_36
  static let tanhGELUCubic = 0.044_715
  static let quickGELUSlope = 1.702

  /// The tower's activation, element-wise: `gelu` is the exact `x Φ(x)`, `tanhGELU` torch's
  /// `approximate="tanh"`, `quickGELU` CLIP's `x σ(1.702 x)`.
  static func activate<T: VisionTrainingScalar>(_ x: [T], _ activation: VisionConfig.Activation) -> [T] {
    switch activation {
    case .gelu:
      let inverseRoot2 = T(0.707_106_781_186_547_52)
      return x.map { $0 * (1 + T.erf($0 * inverseRoot2)) / 2 }
    case .tanhGELU:
      let c = T(tanhGELUScale)
      let cubic = T(tanhGELUCubic)
      return x.map { $0 * (1 + T.tanh(c * ($0 + cubic * $0 * $0 * $0))) / 2 }
    case .quickGELU:
      let slope = T(quickGELUSlope)
      return x.map { $0 / (1 + T.exp(-slope * $0)) }
    }
  }

  /// `dy · activation'(x)`.
  static func activationBackward<T: VisionTrainingScalar>(
    _ dy: [T], x: [T], _ activation: VisionConfig.Activation
  ) -> [T] {
    var dx = [T](repeating: 0, count: x.count)
    switch activation {
    case .gelu:
      // Φ(x) + x φ(x).
      let inverseRoot2 = T(0.707_106_781_186_547_52)
      let inverseRoot2Pi = T(0.398_942_280_401_432_68)
      for index in x.indices {
        let v = x[index]
        let cdf = (1 + T.erf(v * inverseRoot2)) / 2
        let pdf = inverseRoot2Pi * T.exp(-v * v / 2)
        dx[index] = dy[index] * (cdf + v * pdf)
      }
    case .tanhGELU:
      let c = T(tanhGELUScale)
      let cubic = T(tanhGELUCubic)
      for index in x.indices {
        let v = x[index]
        let t = T.tanh(c * (v + cubic * v * v * v))
        let inner = c * (1 + 3 * cubic * v * v)
        dx[index] = dy[index] * ((1 + t) / 2 + v * (1 - t * t) * inner / 2)
      }
    case .quickGELU:
      let slope = T(quickGELUSlope)
      for index in x.indices {
        let v = x[index]
        let sigma = 1 / (1 + T.exp(-slope * v))
        dx[index] = dy[index] * (sigma + slope * v * sigma * (1 - sigma))
      }
    }
    return dx
  }

  // MARK: Attention

  /// `softmax(q kᵀ / √d) v` per stacked sequence (image) and head, with no mask; returns the
  /// output `[rows, heads*d]` and, when `keepProbabilities`, the probabilities per sequence then
  /// head (`[length, length]` each) for the backward.
  static func attention<T: VisionTrainingScalar>(
    queries: [T], keys: [T], values: [T], lengths: [Int], heads: Int, headDimension d: Int,
    keepProbabilities: Bool
  ) throws -> (output: [T], probabilities: [[T]]) {
    let width = heads * d
    let scale = 1 / T(d).squareRoot()
    let rows = lengths.reduce(0, +)
    var output = [T](repeating: 0, count: rows * width)
    var probabilities: [[T]] = []
    var start = 0
    for length in lengths {
      for head in 0..<heads {
        let q = TrainingOps.gatherHead(queries, width: width, head: head, headDimension: d, start: start, count: length)
        let k = TrainingOps.gatherHead(keys, width: width, head: head, headDimension: d, start: start, count: length)
        let v = TrainingOps.gatherHead(values, width: width, head: head, headDimension: d, start: start, count: length)
        var scores = [T](repeating: 0, count: length * length)
        try TrainingOps.gemm(q, rows: length, columns: d, k, rows: length, columns: d, transposeB: true, into: &scores, alpha: scale)
        softmaxRows(&scores, rows: length)
        var o = [T](repeating: 0, count: length * d)
        try TrainingOps.gemm(scores, rows: length, columns: length, v, rows: length, columns: d, into: &o)
        TrainingOps.scatterHead(o, into: &output, width: width, head: head, headDimension: d, start: start, count: length, accumulate: false)
        if keepProbabilities { probabilities.append(scores) }
      }
      start += length
    }
    return (output, probabilities)
  }

  /// Softmax of every row of a square `[rows, rows]` score matrix in place.
  static func softmaxRows<T: VisionTrainingScalar>(_ scores: inout [T], rows: Int) {
    scores.withUnsafeMutableBufferPointer { s in
      for row in 0..<rows {
        let base = row &* rows
        var largest = -T.infinity
        for index in 0..<rows { largest = max(largest, s[base &+ index]) }
        var sum: T = 0
        for index in 0..<rows {
          let value = T.exp(s[base &+ index] - largest)
          s[base &+ index] = value
          sum += value
        }
        let inverse = 1 / sum
        for index in 0..<rows { s[base &+ index] *= inverse }
      }
    }
  }

  /// Gradients of `attention` with respect to queries, keys and values:
  /// `dV = Pᵀ dO`, `dP = dO Vᵀ`, `dS = P ∘ (dP - rowsum(dP ∘ P))`, `dQ = dS K / √d`, `dK = dSᵀ Q / √d`.
  static func attentionBackward<T: VisionTrainingScalar>(
    _ dOutput: [T], queries: [T], keys: [T], values: [T], probabilities: [[T]], lengths: [Int], heads: Int,
    headDimension d: Int
  ) throws -> (queries: [T], keys: [T], values: [T]) {
    let width = heads * d
    let scale = 1 / T(d).squareRoot()
    let rows = lengths.reduce(0, +)
    var dQueries = [T](repeating: 0, count: rows * width)
    var dKeys = dQueries
    var dValues = dQueries
    var start = 0
    var index = 0
    for length in lengths {
      for head in 0..<heads {
        let p = probabilities[index]
        index += 1
        let q = TrainingOps.gatherHead(queries, width: width, head: head, headDimension: d, start: start, count: length)
        let k = TrainingOps.gatherHead(keys, width: width, head: head, headDimension: d, start: start, count: length)
        let v = TrainingOps.gatherHead(values, width: width, head: head, headDimension: d, start: start, count: length)
        let dO = TrainingOps.gatherHead(dOutput, width: width, head: head, headDimension: d, start: start, count: length)
        var dV = [T](repeating: 0, count: length * d)
        try TrainingOps.gemm(p, rows: length, columns: length, transposeA: true, dO, rows: length, columns: d, into: &dV)
        var dS = [T](repeating: 0, count: length * length)
        try TrainingOps.gemm(dO, rows: length, columns: d, v, rows: length, columns: d, transposeB: true, into: &dS)
        for row in 0..<length {
          let base = row &* length
          var dot: T = 0
          for column in 0..<length { dot += dS[base &+ column] * p[base &+ column] }
          for column in 0..<length { dS[base &+ column] = p[base &+ column] * (dS[base &+ column] - dot) }
        }
        var dQ = [T](repeating: 0, count: length * d)
        try TrainingOps.gemm(dS, rows: length, columns: length, k, rows: length, columns: d, into: &dQ, alpha: scale)
        var dK = [T](repeating: 0, count: length * d)
        try TrainingOps.gemm(dS, rows: length, columns: length, transposeA: true, q, rows: length, columns: d, into: &dK, alpha: scale)
        TrainingOps.scatterHead(dQ, into: &dQueries, width: width, head: head, headDimension: d, start: start, count: length, accumulate: false)
        TrainingOps.scatterHead(dK, into: &dKeys, width: width, head: head, headDimension: d, start: start, count: length, accumulate: false)
        TrainingOps.scatterHead(dV, into: &dValues, width: width, head: head, headDimension: d, start: start, count: length, accumulate: false)
      }
      start += length
    }
    return (dQueries, dKeys, dValues)
  }

  /// `x += update ∘ scale` (row-broadcast layer scale), or `x += update` without one.
  static func addScaled<T: VisionTrainingScalar>(_ update: [T], scale: [T]?, to x: inout [T]) {
    guard let scale else {
      TrainingOps.add(update, to: &x)
      return
    }
    let width = scale.count
    for index in x.indices { x[index] += update[index] * scale[index % width] }
  }

  /// `dy ∘ scale` (the gradient reaching the branch under a layer scale).
  static func scaled<T: VisionTrainingScalar>(_ dy: [T], by scale: [T]?) -> [T] {
    guard let scale else { return dy }
    let width = scale.count
    var out = dy
    for index in out.indices { out[index] *= scale[index % width] }
    return out
  }
}
