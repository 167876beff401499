import Foundation
import QCompute

/// The row-wise operations of a transformer block on row-major `[rows, width]` Float buffers.
enum VisionKernels {
  /// `output[rows, out] = input[rows, in] * weight[out, in]^T + bias`, through BLAS.
  static func linear(
    _ input: [Float], rows: Int, weight: [Float], bias: [Float]?, inputWidth: Int, outputWidth: Int
  ) -> [Float] {
    var output = [Float](repeating: 0, count: rows * outputWidth)
    if let bias {
      for row in 0..<rows {
        for column in 0..<outputWidth { output[row * outputWidth + column] = bias[column] }
      }
    }
    guard rows > 0 else { return output }
    input.withUnsafeBufferPointer { a in
      weight.withUnsafeBufferPointer { b in
        output.withUnsafeMutableBufferPointer { c in
          Float._gemm(
            transposeA: false, transposeB: true, m: Int32(rows), n: Int32(outputWidth), k: Int32(inputWidth),
            alpha: 1, a: a.baseAddress, lda: Int32(inputWidth), b: b.baseAddress, ldb: Int32(inputWidth),
            beta: bias == nil ? 0 : 1, c: c.baseAddress, ldc: Int32(outputWidth))
        }
      }
    }
    return output
  }

  /// Layer norm over each row (biased variance, as torch).
  static func layerNorm(_ input: [Float], width: Int, weight: [Float], bias: [Float], epsilon: Float) -> [Float] {
    var output = [Float](repeating: 0, count: input.count)
    let rows = width == 0 ? 0 : input.count / width
    input.withUnsafeBufferPointer { x in
      output.withUnsafeMutableBufferPointer { y in
        for row in 0..<rows {
          let base = row * width
          var sum = 0.0
          for i in 0..<width { sum += Double(x[base + i]) }
          let mean = sum / Double(width)
          var squares = 0.0
          for i in 0..<width {
            let d = Double(x[base + i]) - mean
            squares += d * d
          }
          let inverse = 1 / (squares / Double(width) + Double(epsilon)).squareRoot()
          for i in 0..<width {
            y[base + i] = Float((Double(x[base + i]) - mean) * inverse) * weight[i] + bias[i]
          }
        }
      }
    }
    return output
  }

  static func activate(_ values: inout [Float], _ activation: VisionConfig.Activation) {
    switch activation {
    case .gelu:
      for i in values.indices {
        let x = values[i]
        values[i] = 0.5 * x * (1 + erff(x * 0.70710678118654752))
      }
    case .quickGELU:
      for i in values.indices {
        let x = values[i]
        values[i] = x / (1 + expf(-1.702 * x))
      }
    case .tanhGELU:
      for i in values.indices {
        let x = values[i]
        values[i] = 0.5 * x * (1 + tanhf(0.79788456080286536 * (x + 0.044715 * x * x * x)))
      }
    }
  }

  /// Multi-head self-attention without a mask: softmax(Q K^T / sqrt(d)) V per head, on
  /// `[tokens, heads * headDim]` buffers.
  static func attention(query: [Float], key: [Float], value: [Float], tokens: Int, heads: Int, headDim: Int) -> [Float] {
    let width = heads * headDim
    var output = [Float](repeating: 0, count: tokens * width)
    var scores = [Float](repeating: 0, count: tokens * tokens)
    let scale = 1 / Float(headDim).squareRoot()
    query.withUnsafeBufferPointer { q in
      key.withUnsafeBufferPointer { k in
        value.withUnsafeBufferPointer { v in
          output.withUnsafeMutableBufferPointer { o in
            scores.withUnsafeMutableBufferPointer { s in
              for head in 0..<heads {
                let offset = head * headDim
                Float._gemm(
                  transposeA: false, transposeB: true, m: Int32(tokens), n: Int32(tokens), k: Int32(headDim),
                  alpha: scale, a: q.baseAddress.map { $0 + offset }, lda: Int32(width),
                  b: k.baseAddress.map { $0 + offset }, ldb: Int32(width), beta: 0, c: s.baseAddress,
                  ldc: Int32(tokens))
                for row in 0..<tokens {
                  let base = row * tokens
                  var largest = -Float.infinity
                  for j in 0..<tokens { largest = max(largest, s[base + j]) }
                  var total: Float = 0
                  for j in 0..<tokens {
                    let e = expf(s[base + j] - largest)
                    s[base + j] = e
                    total += e
                  }
                  let inverse = 1 / total
                  for j in 0..<tokens { s[base + j] *= inverse }
                }
                Float._gemm(
                  transposeA: false, transposeB: false, m: Int32(tokens), n: Int32(headDim), k: Int32(tokens),
                  alpha: 1, a: s.baseAddress, lda: Int32(tokens), b: v.baseAddress.map { $0 + offset },
                  ldb: Int32(width), beta: 0, c: o.baseAddress.map { $0 + offset }, ldc: Int32(width))
              }
            }
          }
        }
      }
    }
    return output
  }

  /// torch's `interpolate(mode="bicubic", align_corners=False)` (Keys' cubic, a = -0.75, edges
  /// clamped) of a `[inHeight, inWidth, depth]` grid, as DINOv2 resizes its position embeddings.
  static func bicubicResize(
    _ grid: [Float], inHeight: Int, inWidth: Int, depth: Int, outHeight: Int, outWidth: Int
  ) -> [Float] {
    func axis(_ inSize: Int, _ outSize: Int) -> [(index: Int, weight: Double)] {
      let a = -0.75
      func near(_ x: Double) -> Double { ((a + 2) * x - (a + 3)) * x * x + 1 }
      func far(_ x: Double) -> Double { ((a * x - 5 * a) * x + 8 * a) * x - 4 * a }
      let scale = Double(inSize) / Double(outSize)
      var taps: [(Int, Double)] = []
      for output in 0..<outSize {
        let source = scale * (Double(output) + 0.5) - 0.5
        let floorIndex = Int(source.rounded(.down))
        let t = source - Double(floorIndex)
        let weights = [far(t + 1), near(t), near(1 - t), far(2 - t)]
        for (j, w) in weights.enumerated() {
          taps.append((min(max(floorIndex - 1 + j, 0), inSize - 1), w))
        }
      }
      return taps
    }
    let rows = axis(inHeight, outHeight)
    let columns = axis(inWidth, outWidth)
    var output = [Float](repeating: 0, count: outHeight * outWidth * depth)
    var accumulator = [Double](repeating: 0, count: depth)
    for y in 0..<outHeight {
      for x in 0..<outWidth {
        for d in 0..<depth { accumulator[d] = 0 }
        for i in 0..<4 {
          let (row, wy) = rows[y * 4 + i]
          for j in 0..<4 {
            let (column, wx) = columns[x * 4 + j]
            let w = wy * wx
            let base = (row * inWidth + column) * depth
            for d in 0..<depth { accumulator[d] += w * Double(grid[base + d]) }
          }
        }
        let out = (y * outWidth + x) * depth
        for d in 0..<depth { output[out + d] = Float(accumulator[d]) }
      }
    }
    return output
  }
}
