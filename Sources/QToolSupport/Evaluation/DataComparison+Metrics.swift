import Foundation
import QCompute

/// The per-position numbers of a data comparison, in Double so that identical logits give a KL
/// of exactly 0.
extension DataComparison {
  /// `log softmax(logits)` into `output`, which must have `logits.count` elements.
  static func logSoftmax(_ logits: UnsafeBufferPointer<Float>, into output: UnsafeMutableBufferPointer<Double>) {
    var largest = -Double.infinity
    for value in logits { largest = max(largest, Double(value)) }
    var sum: Double = 0
    for value in logits { sum += exp(Double(value) - largest) }
    let shift = largest + log(sum)
    for index in logits.indices { output[index] = Double(logits[index]) - shift }
  }

  /// KL(p || q) = sum p (log p - log q) of two log-probability rows; terms with p = 0 add 0.
  static func klDivergence(_ logP: UnsafeBufferPointer<Double>, _ logQ: UnsafeBufferPointer<Double>) -> Double {
    var total: Double = 0
    for index in logP.indices {
      let p = exp(logP[index])
      if p > 0 { total += p * (logP[index] - logQ[index]) }
    }
    return max(total, 0)
  }

  /// Index of the largest value, the first one on ties.
  static func argmax(_ values: UnsafeBufferPointer<Float>) -> Int {
    var best = 0
    for index in values.indices where values[index] > values[best] { best = index }
    return best
  }

  /// Mean over rows of the cosine between `a`'s and `b`'s rows; rows where either is all zero
  /// are left out. `nil` when no row is left or the shapes differ.
  static func meanRowCosine(_ a: Matrix<Float>, _ b: Matrix<Float>) -> Double? {
    guard a.rows == b.rows, a.columns == b.columns, a.rows > 0 else { return nil }
    let width = a.columns
    return a.withUnsafeBufferPointer { x in
      b.withUnsafeBufferPointer { y in
        var total: Double = 0
        var counted = 0
        for row in 0..<a.rows {
          var dot: Double = 0
          var xx: Double = 0
          var yy: Double = 0
          for index in (row * width)..<((row + 1) * width) {
            let u = Double(x[index])
            let v = Double(y[index])
            dot += u * v
            xx += u * u
            yy += v * v
          }
          guard xx > 0, yy > 0 else { continue }
          total += dot / (xx.squareRoot() * yy.squareRoot())
          counted += 1
        }
        return counted > 0 ? total / Double(counted) : nil
      }
    }
  }
}
