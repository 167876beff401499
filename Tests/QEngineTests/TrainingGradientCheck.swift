import Foundation

@testable import QEngine

/// Central finite differences in Double, for checking the manual backward passes.
enum GradientCheck {
  static func random(_ count: Int, _ generator: inout SeededGenerator, scale: Double = 1) -> [Double] {
    (0..<count).map { _ in Double.random(in: -scale...scale, using: &generator) }
  }

  /// `Σ r·f(x)` in Double.
  static func dot(_ a: [Double], _ b: [Double]) -> Double { zip(a, b).reduce(0) { $0 + $1.0 * $1.1 } }

  /// Numerical gradient of `loss` with respect to `x` at the given indices (all by default).
  static func numerical(
    _ x: [Double], indices: [Int]? = nil, step: Double = 1e-5, loss: ([Double]) throws -> Double
  ) rethrows -> [Int: Double] {
    var result: [Int: Double] = [:]
    for index in indices ?? Array(x.indices) {
      var plus = x
      plus[index] += step
      var minus = x
      minus[index] -= step
      result[index] = (try loss(plus) - loss(minus)) / (2 * step)
    }
    return result
  }

  /// The largest `|analytic - numeric|` over the checked entries, relative to the largest
  /// gradient magnitude (so that entries near zero do not dominate).
  static func relativeError(analytic: [Double], numeric: [Int: Double]) -> Double {
    var worst: Double = 0
    var scale: Double = 1e-12
    for (index, value) in numeric {
      worst = max(worst, abs(analytic[index] - value))
      scale = max(scale, abs(value), abs(analytic[index]))
    }
    return worst / scale
  }
}
