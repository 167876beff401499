/// Resizing with PIL's separable convolution (`Image.resize` on an 8-bit image), bit for bit:
/// the filter widens with the reduction factor (antialiasing), weights are normalised and
/// rounded to 22-bit fixed point, the horizontal pass runs first and each pass rounds and
/// clamps to 8 bits.
enum ImageResampler {
  enum Filter {
    case bilinear, bicubic

    var support: Double {
      switch self {
      case .bilinear: 1
      case .bicubic: 2
      }
    }

    func weight(_ distance: Double) -> Double {
      let x = abs(distance)
      switch self {
      case .bilinear:
        return x < 1 ? 1 - x : 0
      case .bicubic:
        // Keys' cubic with a = -0.5, PIL's choice.
        let a = -0.5
        if x < 1 { return ((a + 2) * x - (a + 3)) * x * x + 1 }
        if x < 2 { return (((x - 5) * x + 8) * x - 4) * a }
        return 0
      }
    }
  }

  /// For each output sample: the first input index, how many inputs, and their weights.
  struct Coefficients {
    var kernelSize: Int
    var first: [Int]
    var count: [Int]
    /// `outputSize * kernelSize` normalised weights, zero-padded.
    var weights: [Double]
  }

  /// PIL's `precompute_coeffs` (also torch's antialiased interpolation, which copies it).
  static func coefficients(inputSize: Int, outputSize: Int, filter: Filter) -> Coefficients {
    let scale = Double(inputSize) / Double(outputSize)
    let filterScale = max(scale, 1)
    let support = filter.support * filterScale
    let kernelSize = Int(support.rounded(.up)) * 2 + 1
    var first = [Int](repeating: 0, count: outputSize)
    var count = [Int](repeating: 0, count: outputSize)
    var weights = [Double](repeating: 0, count: outputSize * kernelSize)
    for output in 0..<outputSize {
      let center = (Double(output) + 0.5) * scale
      let inverse = 1 / filterScale
      // C's (int) cast truncates toward zero.
      let low = max(Int(center - support + 0.5), 0)
      let high = min(Int(center + support + 0.5), inputSize)
      let taps = min(high - low, kernelSize)
      var total = 0.0
      for tap in 0..<taps {
        let w = filter.weight((Double(tap + low) - center + 0.5) * inverse)
        weights[output * kernelSize + tap] = w
        total += w
      }
      if total != 0 {
        for tap in 0..<taps { weights[output * kernelSize + tap] /= total }
      }
      first[output] = low
      count[output] = max(taps, 0)
    }
    return Coefficients(kernelSize: kernelSize, first: first, count: count, weights: weights)
  }

  private static let precisionBits = 32 - 8 - 2

  /// Weights in PIL's fixed point, rounded half away from zero.
  private static func fixedPoint(_ weights: [Double]) -> [Int] {
    let one = Double(1 << precisionBits)
    return weights.map { $0 < 0 ? Int(-0.5 + $0 * one) : Int(0.5 + $0 * one) }
  }

  @inline(__always)
  private static func clip8(_ sum: Int) -> UInt8 {
    let shifted = sum >> precisionBits
    return shifted < 0 ? 0 : shifted > 255 ? 255 : UInt8(shifted)
  }

  /// Resizes an RGB image to `width` x `height`.
  static func resize(_ image: RGBImage, width: Int, height: Int, filter: Filter) -> RGBImage {
    if width == image.width && height == image.height { return image }
    var current = image
    let vertical = coefficients(inputSize: image.height, outputSize: height, filter: filter)
    var verticalFirst = vertical.first
    if width != image.width {
      // Only the rows the vertical pass reads, as PIL does.
      let firstRow = vertical.first[0]
      let lastRow = vertical.first[height - 1] + vertical.count[height - 1]
      for index in verticalFirst.indices { verticalFirst[index] -= firstRow }
      current = horizontal(current, rows: firstRow..<lastRow, width: width, filter: filter)
    }
    if height != image.height {
      current = verticalPass(
        current, height: height, first: verticalFirst, count: vertical.count,
        kernelSize: vertical.kernelSize, weights: fixedPoint(vertical.weights))
    }
    return current
  }

  private static func horizontal(_ image: RGBImage, rows: Range<Int>, width: Int, filter: Filter) -> RGBImage {
    let c = coefficients(inputSize: image.width, outputSize: width, filter: filter)
    let weights = fixedPoint(c.weights)
    var out = [UInt8](repeating: 0, count: rows.count * width * 3)
    let half = 1 << (precisionBits - 1)
    image.pixels.withUnsafeBufferPointer { input in
      out.withUnsafeMutableBufferPointer { output in
        for (outRow, row) in rows.enumerated() {
          let rowBase = row * image.width * 3
          for x in 0..<width {
            var s0 = half
            var s1 = half
            var s2 = half
            let first = c.first[x]
            for tap in 0..<c.count[x] {
              let w = weights[x * c.kernelSize + tap]
              let p = rowBase + (first + tap) * 3
              s0 += Int(input[p]) * w
              s1 += Int(input[p + 1]) * w
              s2 += Int(input[p + 2]) * w
            }
            let o = (outRow * width + x) * 3
            output[o] = clip8(s0)
            output[o + 1] = clip8(s1)
            output[o + 2] = clip8(s2)
          }
        }
      }
    }
    return RGBImage(width: width, height: rows.count, pixels: out)
  }

  private static func verticalPass(
    _ image: RGBImage, height: Int, first: [Int], count: [Int], kernelSize: Int, weights: [Int]
  ) -> RGBImage {
    let rowBytes = image.width * 3
    var out = [UInt8](repeating: 0, count: height * rowBytes)
    let half = 1 << (precisionBits - 1)
    image.pixels.withUnsafeBufferPointer { input in
      out.withUnsafeMutableBufferPointer { output in
        for y in 0..<height {
          for byte in 0..<rowBytes {
            var sum = half
            for tap in 0..<count[y] {
              sum += Int(input[(first[y] + tap) * rowBytes + byte]) * weights[y * kernelSize + tap]
            }
            output[y * rowBytes + byte] = clip8(sum)
          }
        }
      }
    }
    return RGBImage(width: image.width, height: height, pixels: out)
  }
}
