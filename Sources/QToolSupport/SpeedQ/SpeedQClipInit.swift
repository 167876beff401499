import Foundation
import QCompute

/// SPEED-Q's clip initialisation for QAT (speedq.md 1.2): per group, the shrink of the top and
/// bottom edges with the smallest quantization error, then the weights hard-clamped to it.
///
/// Without activations the error is the weight error `Σ (Q(clip(w)) - w)²` that
/// `ClipSearchQuantizer` minimises (same candidates, grid and tie order); this form returns the
/// clamped weights, which that quantizer does not. With a Gram matrix, `GramClipSearch` decides.
public enum SpeedQClipInit {
  /// `weights` clamped, group by group, to the best range of the weights-only search.
  public static func clamped(
    _ weights: [Float], rows: Int, columns: Int, bits: Int, groupSize: Int
  ) throws(SpeedQError) -> [Float] {
    guard rows * columns == weights.count, groupSize > 0, columns % groupSize == 0, (1...8).contains(bits) else {
      throw .invalidInput(
        operation: "clip search",
        reason: "\(weights.count) weights as [\(rows), \(columns)] in groups of \(groupSize) at \(bits) bits")
    }
    let levels = Float((1 << bits) - 1)
    let factors = (0..<10).map { Float(1 - Double($0) / 20) }
    var out = weights
    let groupsPerRow = columns / max(groupSize, 1)
    let blocks = min(max(1, rows), 8)
    out.withUnsafeMutableBufferPointer { target in
      let base = SendablePointer(address: target.baseAddress)
      DispatchQueue.concurrentPerform(iterations: blocks) { block in
        guard let target = base.address else { return }
        weights.withUnsafeBufferPointer { source in
          for row in (block * rows / blocks)..<((block + 1) * rows / blocks) {
            for group in 0..<groupsPerRow {
              let start = row * columns + group * groupSize
              let values = UnsafeBufferPointer(rebasing: source[start..<(start + groupSize)])
              let (bottom, top) = bestBounds(values, factors: factors, levels: levels)
              for index in 0..<groupSize {
                target[start + index] = min(max(values[index], bottom), top)
              }
            }
          }
        }
      }
    }
    return out
  }

  /// The first (bottom, top) with the smallest squared error, top shrink outer, bottom inner.
  static func bestBounds(
    _ values: UnsafeBufferPointer<Float>, factors: [Float], levels: Float
  ) -> (bottom: Float, top: Float) {
    var low = Float.infinity
    var high = -Float.infinity
    for value in values {
      low = min(low, value)
      high = max(high, value)
    }
    if low == high { return (low, high) }
    var bestError = Double.infinity
    var best = (bottom: low, top: high)
    for topFactor in factors {
      for bottomFactor in factors {
        let top = high * topFactor
        let bottom = low * bottomFactor
        // BitDistiller's plain asymmetric grid on the clamped group's own extremes.
        let clampedLow = min(max(low, bottom), top)
        let clampedHigh = min(max(high, bottom), top)
        let scale = max(clampedHigh - clampedLow, 1e-5) / levels
        let zero = min(max(-(clampedLow / scale).rounded(.toNearestOrEven), 0), levels)
        var error = 0.0
        for value in values {
          let clamped = min(max(value, bottom), top)
          let code = min(max((clamped / scale).rounded(.toNearestOrEven) + zero, 0), levels)
          let difference = (code - zero) * scale - value
          error += Double(difference * difference)
        }
        if error < bestError {
          bestError = error
          best = (bottom, top)
        }
      }
    }
    return best
  }
}

/// A pointer handed to concurrent workers that write disjoint ranges.
struct SendablePointer<T>: @unchecked Sendable {
  var address: UnsafeMutablePointer<T>?
}
