import QCompute

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
    guard rows > 0, columns > 0 else { return ([Float](repeating: 0, count: weight.count), [Bool](repeating: false, count: weight.count)) }
    weight.withUnsafeBufferPointer { w in
      scales.withUnsafeMutableBufferPointer { scaleBuffer in
        zeros.withUnsafeMutableBufferPointer { zeroBuffer in
          let (scaleOut, zeroOut) = (
            SendableMutablePointer(scaleBuffer.baseAddress!), SendableMutablePointer(zeroBuffer.baseAddress!)
          )
          forEachRowBlock(rows: rows, elementsPerRow: columns, minimumElementsPerBlock: engineBlockElements) { range in
            for o in range {
              for j in 0..<groups {
                let start = o * columns + j * group
                let end = o * columns + min(columns, (j + 1) * group)
                var low = Float.infinity
                var high = -Float.infinity
                for index in start..<end {
                  low = min(low, w[index])
                  high = max(high, w[index])
                }
                if low == high { (low, high) = (-1, 1) }
                let scale = max((high - low) / top, 1e-5)
                scaleOut.pointer[j * rows + o] = scale
                zeroOut.pointer[j * rows + o] = min(max((-low / scale).rounded(.toNearestOrEven), 0), top)
              }
            }
          }
        }
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
    weight.withUnsafeBufferPointer { w in
      quantizedScales.withUnsafeBufferPointer { scaleBuffer in
        zeros.withUnsafeBufferPointer { zeroBuffer in
          values.withUnsafeMutableBufferPointer { valueBuffer in
            passes.withUnsafeMutableBufferPointer { passBuffer in
              let (valueOut, passOut) = (
                SendableMutablePointer(valueBuffer.baseAddress!), SendableMutablePointer(passBuffer.baseAddress!)
              )
              forEachRowBlock(rows: rows, elementsPerRow: columns, minimumElementsPerBlock: engineBlockElements) { range in
                for o in range {
                  for j in 0..<groups {
                    let slot = j * rows + o
                    let scale = scaleBuffer[slot]
                    let zero = zeroBuffer[slot]
                    let low = -scale * zero
                    let high = scale * (top - zero)
                    for column in (j * group)..<min(columns, (j + 1) * group) {
                      let index = o * columns + column
                      let w = w[index]
                      let code = min(max((w / scale + zero).rounded(.toNearestOrEven), 0), top)
                      valueOut.pointer[index] = scale * (code - zero)
                      passOut.pointer[index] = low <= w && w <= high
                    }
                  }
                }
              }
            }
          }
        }
      }
    }
    return (values, passes)
  }
}
