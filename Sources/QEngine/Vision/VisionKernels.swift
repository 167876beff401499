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

  /// Layer norm over each row (biased variance, as torch), in SIMD8 float with four
  /// accumulators: mean first, then the variance of the centred row.
  static func layerNorm(_ input: [Float], width: Int, weight: [Float], bias: [Float], epsilon: Float) -> [Float] {
    var output = [Float](repeating: 0, count: input.count)
    let rows = width == 0 ? 0 : input.count / width
    guard rows > 0 else { return output }
    input.withUnsafeBufferPointer { x in
      weight.withUnsafeBufferPointer { w in
        bias.withUnsafeBufferPointer { b in
          output.withUnsafeMutableBufferPointer { y in
            guard let xBase = x.baseAddress, let yBase = y.baseAddress else { return }
            let target = SendableMutablePointer(yBase)
            forEachRowBlock(rows: rows, elementsPerRow: width, minimumElementsPerBlock: engineBlockElements) { range in
              for row in range {
                normalizeRow(
                  UnsafeBufferPointer(start: xBase + row * width, count: width), weight: w, bias: b,
                  epsilon: epsilon, into: target.pointer + row * width)
              }
            }
          }
        }
      }
    }
    return output
  }

  @inline(__always)
  private static func normalizeRow(
    _ x: UnsafeBufferPointer<Float>, weight: UnsafeBufferPointer<Float>, bias: UnsafeBufferPointer<Float>,
    epsilon: Float, into y: UnsafeMutablePointer<Float>
  ) {
    typealias V = SIMD8<Float>
    let width = x.count
    let whole = width & ~31
    guard let start = x.baseAddress else { return }
    let raw = UnsafeRawPointer(start)
    var s0 = V(), s1 = V(), s2 = V(), s3 = V()
    var i = 0
    while i < whole {
      s0 += raw.loadUnaligned(fromByteOffset: i * 4, as: V.self)
      s1 += raw.loadUnaligned(fromByteOffset: (i + 8) * 4, as: V.self)
      s2 += raw.loadUnaligned(fromByteOffset: (i + 16) * 4, as: V.self)
      s3 += raw.loadUnaligned(fromByteOffset: (i + 24) * 4, as: V.self)
      i &+= 32
    }
    var sum = ((s0 + s1) + (s2 + s3)).sum()
    while i < width {
      sum += x[i]
      i &+= 1
    }
    let mean = sum / Float(width)
    let m = V(repeating: mean)
    s0 = V(); s1 = V(); s2 = V(); s3 = V()
    i = 0
    while i < whole {
      let d0 = raw.loadUnaligned(fromByteOffset: i * 4, as: V.self) - m
      let d1 = raw.loadUnaligned(fromByteOffset: (i + 8) * 4, as: V.self) - m
      let d2 = raw.loadUnaligned(fromByteOffset: (i + 16) * 4, as: V.self) - m
      let d3 = raw.loadUnaligned(fromByteOffset: (i + 24) * 4, as: V.self) - m
      s0 += d0 * d0
      s1 += d1 * d1
      s2 += d2 * d2
      s3 += d3 * d3
      i &+= 32
    }
    var squares = ((s0 + s1) + (s2 + s3)).sum()
    while i < width {
      let d = x[i] - mean
      squares += d * d
      i &+= 1
    }
    let inverse = 1 / (squares / Float(width) + epsilon).squareRoot()
    for j in 0..<width { y[j] = (x[j] - mean) * inverse * weight[j] + bias[j] }
  }

  static func activate(_ values: inout [Float], _ activation: VisionConfig.Activation) {
    let count = values.count
    values.withUnsafeMutableBufferPointer { buffer in
      guard let base = buffer.baseAddress else { return }
      let target = SendableMutablePointer(base)
      // Rows of 1024 elements only to split the work.
      let chunk = 1024
      forEachRowBlock(rows: (count + chunk - 1) / chunk, elementsPerRow: chunk, minimumElementsPerBlock: engineBlockElements) { range in
        let start = range.lowerBound * chunk
        let slice = UnsafeMutableBufferPointer(start: target.pointer + start, count: min(count, range.upperBound * chunk) - start)
        switch activation {
        case .gelu:
          VectorMath.map(slice) { VectorMath.gelu($0) }
        case .quickGELU:
          VectorMath.map(slice) { x in
            x / (VectorMath.Vector(repeating: 1) + VectorMath.exp(VectorMath.Vector(repeating: -1.702) * x))
          }
        case .tanhGELU:
          for i in slice.indices {
            let x = slice[i]
            slice[i] = 0.5 * x * (1 + tanhf(0.79788456080286536 * (x + 0.044715 * x * x * x)))
          }
        }
      }
    }
  }

  /// Multi-head self-attention without a mask: softmax(Q K^T / sqrt(d)) V per head, on
  /// `[tokens, heads * headDim]` buffers.
  ///
  /// The scores of all heads are computed first (BLAS, which threads itself), then every row's
  /// softmax in parallel, then the products with V.
  static func attention(query: [Float], key: [Float], value: [Float], tokens: Int, heads: Int, headDim: Int) -> [Float] {
    let width = heads * headDim
    var output = [Float](repeating: 0, count: tokens * width)
    guard tokens > 0, heads > 0 else { return output }
    let perHead = tokens * tokens
    var scores = [Float](repeating: 0, count: heads * perHead)
    let scale = 1 / Float(headDim).squareRoot()
    query.withUnsafeBufferPointer { q in
      key.withUnsafeBufferPointer { k in
        value.withUnsafeBufferPointer { v in
          output.withUnsafeMutableBufferPointer { o in
            scores.withUnsafeMutableBufferPointer { s in
              guard let scoreBase = s.baseAddress else { return }
              for head in 0..<heads {
                let offset = head * headDim
                Float._gemm(
                  transposeA: false, transposeB: true, m: Int32(tokens), n: Int32(tokens), k: Int32(headDim),
                  alpha: scale, a: q.baseAddress.map { $0 + offset }, lda: Int32(width),
                  b: k.baseAddress.map { $0 + offset }, ldb: Int32(width), beta: 0, c: scoreBase + head * perHead,
                  ldc: Int32(tokens))
              }
              let target = SendableMutablePointer(scoreBase)
              forEachRowBlock(rows: heads * tokens, elementsPerRow: tokens, minimumElementsPerBlock: engineBlockElements) { range in
                for row in range {
                  softmax(UnsafeMutableBufferPointer(start: target.pointer + row * tokens, count: tokens))
                }
              }
              for head in 0..<heads {
                let offset = head * headDim
                Float._gemm(
                  transposeA: false, transposeB: false, m: Int32(tokens), n: Int32(headDim), k: Int32(tokens),
                  alpha: 1, a: scoreBase + head * perHead, lda: Int32(tokens), b: v.baseAddress.map { $0 + offset },
                  ldb: Int32(width), beta: 0, c: o.baseAddress.map { $0 + offset }, ldc: Int32(width))
              }
            }
          }
        }
      }
    }
    return output
  }

  /// Softmax of one row in place, SIMD8.
  @inline(__always)
  static func softmax(_ row: UnsafeMutableBufferPointer<Float>) {
    var largest = -Float.infinity
    for value in row { largest = max(largest, value) }
    let shift = VectorMath.Vector(repeating: largest)
    VectorMath.map(row) { VectorMath.exp($0 - shift) }
    var total: Float = 0
    for value in row { total += value }
    let inverse = 1 / total
    for i in row.indices { row[i] *= inverse }
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
