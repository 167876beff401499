import Foundation
import QCompute

/// The element types the training graph runs in: Float for training, Double for gradient checks.
protocol TrainingScalar: LinalgScalar {
  static func exp(_ value: Self) -> Self
  static func log(_ value: Self) -> Self
}

extension Float: TrainingScalar {
  static func exp(_ value: Float) -> Float { Foundation.exp(value) }
  static func log(_ value: Float) -> Float { Foundation.log(value) }
}

extension Double: TrainingScalar {
  static func exp(_ value: Double) -> Double { Foundation.exp(value) }
  static func log(_ value: Double) -> Double { Foundation.log(value) }
}

/// A small seeded generator (SplitMix64) so that adapter initialisation is reproducible.
public struct SeededGenerator: RandomNumberGenerator, Sendable {
  private var state: UInt64

  public init(seed: UInt64) { state = seed }

  public mutating func next() -> UInt64 {
    state &+= 0x9E37_79B9_7F4A_7C15
    var z = state
    z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
    z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
    return z ^ (z >> 31)
  }
}
