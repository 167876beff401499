/// Rounds a latent weight onto a quantization grid in the forward pass of quantization-aware
/// training; the backward is the straight-through estimator, which passes the gradient where
/// the weight lies inside the grid's range and stops it where it was clamped.
public protocol FakeQuantizer: Sendable {
  /// The quantized-then-dequantized weight `ŵ` of `[rows, columns]` latent weights, and for each
  /// weight whether the gradient passes (`-s z <= w <= s (2^b - 1 - z)`).
  func fakeQuantize(_ weight: [Float], rows: Int, columns: Int) -> (values: [Float], passes: [Bool])
}

/// SPEED-Q's bilevel grid for QAT (speedq.md 1.1): per group of `groupSize` inputs, min/max
/// affine at `bits` with an integer zero; with `scaleGroupSize`, the scales of each chunk of that
/// many groups (in group-index-major order) are quantized again to 4 bits. Min/max follow the
/// current weights on every call; scales and zeros get no gradient.
public struct GroupAffineFakeQuantizer: FakeQuantizer {
  public var bits: Int
  public var groupSize: Int
  public var scaleGroupSize: Int?

  public init(bits: Int, groupSize: Int, scaleGroupSize: Int? = nil) {
    self.bits = bits
    self.groupSize = groupSize
    self.scaleGroupSize = scaleGroupSize
  }

  public func fakeQuantize(_ weight: [Float], rows: Int, columns: Int) -> (values: [Float], passes: [Bool]) {
    let group = min(max(1, groupSize), max(1, columns))
    let groups = (columns + group - 1) / group
    let top = Float((1 << bits) - 1)
    // Row r = j * rows + o holds W[o, j*g ..< (j+1)*g], as in the reference.
    var scales = [Float](repeating: 0, count: groups * rows)
    var zeros = scales
    for j in 0..<groups {
      for o in 0..<rows {
        let start = o * columns + j * group
        let end = o * columns + min(columns, (j + 1) * group)
        var low = Float.infinity
        var high = -Float.infinity
        for index in start..<end {
          low = min(low, weight[index])
          high = max(high, weight[index])
        }
        if low == high { (low, high) = (-1, 1) }
        let scale = max((high - low) / top, 1e-5)
        scales[j * rows + o] = scale
        zeros[j * rows + o] = min(max((-low / scale).rounded(.toNearestOrEven), 0), top)
      }
    }
    var quantizedScales = scales
    if let chunk = scaleGroupSize, chunk > 0 {
      var start = 0
      while start < scales.count {
        let end = min(scales.count, start + chunk)
        var low = scales[start..<end].min() ?? 0
        var high = scales[start..<end].max() ?? 0
        if low == high { (low, high) = (-1, 1) }
        let step = max((high - low) / 15, 1e-5)
        let zero = -low / step
        for index in start..<end {
          let code = min(max((scales[index] / step + zero).rounded(.toNearestOrEven), 0), 15)
          quantizedScales[index] = step * (code - zero)
        }
        start = end
      }
    }
    var values = [Float](repeating: 0, count: weight.count)
    var passes = [Bool](repeating: false, count: weight.count)
    for o in 0..<rows {
      for column in 0..<columns {
        let slot = (column / group) * rows + o
        let scale = quantizedScales[slot]
        let zero = zeros[slot]
        let w = weight[o * columns + column]
        let code = min(max((w / scale + zero).rounded(.toNearestOrEven), 0), top)
        values[o * columns + column] = scale * (code - zero)
        passes[o * columns + column] = -scale * zero <= w && w <= scale * (top - zero)
      }
    }
    return (values, passes)
  }
}
