/// Linear-kernel CKA with the unbiased HSIC estimator (Nguyen et al. 2021), the variant LoRASuite
/// uses to compare layers of two models.
///
/// Rows are examples and columns are features. For one minibatch of `n` examples, with `K = X Xᵀ`
/// and `L = Y Yᵀ` and their diagonals zeroed (`K̃`, `L̃`):
///
///     HSIC₁(K, L) = [tr(K̃L̃) + (1ᵀK̃1)(1ᵀL̃1)/((n−1)(n−2)) − 2/(n−2)·1ᵀK̃L̃1] / (n(n−3))
///
/// and CKA = ΣHSIC₁(K, L) / √(ΣHSIC₁(K, K)·ΣHSIC₁(L, L)) over the minibatches. The estimator needs
/// `n ≥ 4`. It is invariant to orthogonal transforms and isotropic scaling of either feature space.
public enum LinearCKA {
  /// The unbiased linear CKA of two representations of the same examples, as one minibatch.
  /// - Throws: `ComputeError.shapeMismatch` when the row counts differ or are below 4.
  public static func unbiased<Scalar: LinalgScalar>(_ x: Matrix<Scalar>, _ y: Matrix<Scalar>)
    throws(ComputeError) -> Double
  {
    var accumulator = MinibatchCKA()
    try accumulator.add(x: x, y: y)
    return accumulator.value
  }
}

/// Accumulates linear CKA over minibatches: the three HSIC₁ sums, combined only at the end.
public struct MinibatchCKA: Sendable, Equatable {
  /// Σ HSIC₁(K, L) over the minibatches so far.
  public private(set) var crossHSIC: Double = 0
  /// Σ HSIC₁(K, K).
  public private(set) var xHSIC: Double = 0
  /// Σ HSIC₁(L, L).
  public private(set) var yHSIC: Double = 0
  /// The number of minibatches added.
  public private(set) var batches = 0

  public init() {}

  /// Adds one minibatch: `x` and `y` hold the same examples in the same row order.
  /// - Throws: `ComputeError.shapeMismatch` when the row counts differ or are below 4.
  public mutating func add<Scalar: LinalgScalar>(x: Matrix<Scalar>, y: Matrix<Scalar>)
    throws(ComputeError)
  {
    guard x.rows == y.rows else {
      throw .shapeMismatch(
        operation: "MinibatchCKA.add", detail: "x has \(x.rows) examples, y has \(y.rows)")
    }
    let k = try HollowGram(representation: x, operation: "MinibatchCKA.add")
    let l = try HollowGram(representation: y, operation: "MinibatchCKA.add")
    crossHSIC += k.hsic(with: l)
    xHSIC += k.hsic(with: k)
    yHSIC += l.hsic(with: l)
    batches += 1
  }

  /// The CKA so far; NaN before the first minibatch or when a representation has no variation.
  public var value: Double {
    let denominator = (xHSIC * yHSIC).squareRoot()
    guard batches > 0, denominator > 0 else { return .nan }
    return crossHSIC / denominator
  }
}

/// A Gram matrix `X Xᵀ` with its diagonal zeroed, plus the sums HSIC₁ needs, in `Double`.
struct HollowGram: Sendable {
  let order: Int
  /// Row-major `K̃`, `order` × `order`.
  let elements: [Double]
  /// `K̃ 1`.
  let rowSums: [Double]
  /// `1ᵀ K̃ 1`.
  let total: Double

  init<Scalar: LinalgScalar>(representation x: Matrix<Scalar>, operation: String)
    throws(ComputeError)
  {
    let n = x.rows
    guard n >= 4 else {
      throw .shapeMismatch(
        operation: operation,
        detail: "\(n) examples; the unbiased HSIC estimator needs at least 4")
    }
    let gram = try x.rowGram()
    var elements = [Double](repeating: 0, count: n * n)
    var rowSums = [Double](repeating: 0, count: n)
    gram.withUnsafeBufferPointer { source in
      elements.withUnsafeMutableBufferPointer { target in
        for i in 0..<n {
          var sum: Double = 0
          let base = i &* n
          for j in 0..<n where j != i {
            let value = Double(source[base &+ j])
            target[base &+ j] = value
            sum += value
          }
          rowSums[i] = sum
        }
      }
    }
    self.order = n
    self.elements = elements
    self.rowSums = rowSums
    self.total = rowSums.reduce(0, +)
  }

  /// HSIC₁ from the three inner products, shared with the all-pairs path in `MinibatchCKAMatrix`.
  static func hsic(order n: Int, trace: Double, totals: Double, rowSumsDot: Double) -> Double {
    let n = Double(n)
    return (trace + totals / ((n - 1) * (n - 2)) - 2 / (n - 2) * rowSumsDot) / (n * (n - 3))
  }

  func hsic(with other: HollowGram) -> Double {
    HollowGram.hsic(
      order: order, trace: dot(elements, other.elements), totals: total * other.total,
      rowSumsDot: dot(rowSums, other.rowSums))
  }
}

/// `Σ a[i] b[i]` with four accumulators.
func dot(_ a: [Double], _ b: [Double]) -> Double {
  a.withUnsafeBufferPointer { a in
    b.withUnsafeBufferPointer { b in
      let count = min(a.count, b.count)
      var (s0, s1, s2, s3): (Double, Double, Double, Double) = (0, 0, 0, 0)
      var i = 0
      while i &+ 4 <= count {
        s0 += a[i] * b[i]
        s1 += a[i &+ 1] * b[i &+ 1]
        s2 += a[i &+ 2] * b[i &+ 2]
        s3 += a[i &+ 3] * b[i &+ 3]
        i &+= 4
      }
      while i < count {
        s0 += a[i] * b[i]
        i &+= 1
      }
      return (s0 + s1) + (s2 + s3)
    }
  }
}
