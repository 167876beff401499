/// Summary statistics of a tensor's values, mergeable so they can be taken chunk by chunk and core by core.
///
/// Conventions, chosen so one bad value does not hide the shape of the rest:
/// - `min`, `max`, `absMax`, `mean` and `std` are taken over the finite values only; NaN and
///   infinite values are counted in `nanCount` and `infCount` instead.
/// - `std` is the population standard deviation (numpy's default, `ddof=0`).
/// - `zeroFraction` is the share of all elements (finite or not) that equal zero, `-0.0` included.
/// - With no elements, or no finite elements, the value statistics are `nil` (never NaN), so callers
///   cannot print a made-up number.
///
/// Mean and variance are kept as (count, mean, sum of squared deviations) in `Double` and merged with
/// Chan et al.'s parallel update, which stays accurate when the mean is large compared to the spread.
public struct TensorStatistics: Sendable, Equatable {
  /// Every element seen, finite or not.
  public internal(set) var count: Int = 0
  /// Elements that are neither NaN nor infinite.
  public internal(set) var finiteCount: Int = 0
  public internal(set) var nanCount: Int = 0
  /// Elements equal to `+inf` or `-inf`.
  public internal(set) var infCount: Int = 0
  /// Elements equal to zero (either sign).
  public internal(set) var zeroCount: Int = 0
  /// Smallest finite value; `+inf` while there is none.
  var _min: Float = .infinity
  /// Largest finite value; `-inf` while there is none.
  var _max: Float = -.infinity
  /// Mean of the finite values.
  var _mean: Double = 0
  /// Sum of squared deviations from `_mean` over the finite values.
  var _m2: Double = 0

  /// Statistics of nothing: the identity of `merge`.
  public init() {}

  /// The smallest finite value, or `nil` when there is none.
  public var min: Float? { finiteCount > 0 ? _min : nil }
  /// The largest finite value, or `nil` when there is none.
  public var max: Float? { finiteCount > 0 ? _max : nil }
  /// The largest magnitude among the finite values, or `nil` when there is none.
  public var absMax: Float? { finiteCount > 0 ? Swift.max(Swift.abs(_min), Swift.abs(_max)) : nil }
  /// The mean of the finite values, or `nil` when there is none.
  public var mean: Double? { finiteCount > 0 ? _mean : nil }
  /// The population variance of the finite values, or `nil` when there is none.
  public var variance: Double? { finiteCount > 0 ? _m2 / Double(finiteCount) : nil }
  /// The population standard deviation of the finite values, or `nil` when there is none.
  public var std: Double? { variance.map { $0.squareRoot() } }
  /// The share of elements equal to zero, or `nil` when there are no elements.
  public var zeroFraction: Double? { count > 0 ? Double(zeroCount) / Double(count) : nil }

  /// The statistics of the concatenation of the two parts.
  public static func merge(_ a: TensorStatistics, _ b: TensorStatistics) -> TensorStatistics {
    var result = a
    result.merge(b)
    return result
  }

  /// Adds the elements another part saw, as if they had been seen here.
  public mutating func merge(_ other: TensorStatistics) {
    let na = Double(finiteCount)
    let nb = Double(other.finiteCount)
    if other.finiteCount > 0 {
      if finiteCount == 0 {
        _mean = other._mean
        _m2 = other._m2
      } else {
        let n = na + nb
        let delta = other._mean - _mean
        _mean += delta * (nb / n)
        _m2 += other._m2 + delta * delta * (na * nb / n)
      }
      _min = Swift.min(_min, other._min)
      _max = Swift.max(_max, other._max)
    }
    count += other.count
    finiteCount += other.finiteCount
    nanCount += other.nanCount
    infCount += other.infCount
    zeroCount += other.zeroCount
  }

  /// Adds a chunk of elements on the calling thread, for callers that stream a tensor piece by piece.
  public mutating func add(_ chunk: UnsafeBufferPointer<Float>) {
    var start = 0
    while start < chunk.count {
      let end = Swift.min(start &+ Self.blockSize, chunk.count)
      merge(Self._block(UnsafeBufferPointer(rebasing: chunk[start..<end])))
      start = end
    }
  }
}
