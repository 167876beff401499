import Dispatch
import Foundation

/// SIMD8 versions of the element-wise functions of a transformer block, and a row splitter.
///
/// libm's `expf` and `erff` cost 10-20 ns a call and do not vectorise; a ViT-S forward pass
/// makes about ten million such calls in GELU and softmax.
enum VectorMath {
  typealias Vector = SIMD8<Float>

  /// e^x to about 1 ulp (Cephes' `expf` polynomial), for x in [-87, 88]; below -87 the result is
  /// the smallest normal float instead of a subnormal or zero, which callers here accept.
  @inline(__always)
  static func exp(_ x: Vector) -> Vector {
    // Masked selects rather than `clamped`, which does not inline to min/max instructions.
    let low = Vector(repeating: -87)
    let high = Vector(repeating: 88)
    let clamped = x.replacing(with: low, where: x .< low).replacing(with: high, where: x .> high)
    // Adding 1.5 * 2^23 rounds to the nearest integer and leaves it in the low mantissa bits.
    let magic = Vector(repeating: 12_582_912)
    let shifted = clamped * Vector(repeating: 1.442_695_04) + magic
    let n = shifted - magic
    // Cody-Waite: ln 2 split into a part exact in float and a remainder.
    let r = clamped - n * Vector(repeating: 0.693_359_375) - n * Vector(repeating: -2.121_944_4e-4)
    var p = Vector(repeating: 1.987_569_15e-4)
    p = p * r + Vector(repeating: 1.398_199_95e-3)
    p = p * r + Vector(repeating: 8.333_451_9e-3)
    p = p * r + Vector(repeating: 4.166_579_59e-2)
    p = p * r + Vector(repeating: 1.666_666_55e-1)
    p = p * r + Vector(repeating: 5.000_000_12e-1)
    let expR = p * (r * r) + r + Vector(repeating: 1)
    let bits = unsafeBitCast(shifted, to: SIMD8<UInt32>.self)
    // The integer sits in the low bits of `shifted`'s pattern 0x4B400000 + n; 2^n = (n + 127) << 23.
    let scaleBits = (bits &+ SIMD8(repeating: 127 &- 0x4B40_0000)) &<< SIMD8(repeating: 23)
    return expR * unsafeBitCast(scaleBits, to: Vector.self)
  }

  /// erfc(z) for z >= 0 with a relative error below 1.2e-7 (Numerical Recipes' `erfcc`, a
  /// Chebyshev fit of erfc(z) e^(z^2)), so small tails keep their relative accuracy.
  @inline(__always)
  static func erfcNonNegative(_ z: Vector) -> Vector {
    let t = Vector(repeating: 1) / (Vector(repeating: 1) + Vector(repeating: 0.5) * z)
    var p = Vector(repeating: 0.170_872_77)
    p = p * t + Vector(repeating: -0.822_152_23)
    p = p * t + Vector(repeating: 1.488_515_87)
    p = p * t + Vector(repeating: -1.135_203_98)
    p = p * t + Vector(repeating: 0.278_868_07)
    p = p * t + Vector(repeating: -0.186_288_06)
    p = p * t + Vector(repeating: 0.096_784_18)
    p = p * t + Vector(repeating: 0.374_091_96)
    p = p * t + Vector(repeating: 1.000_023_68)
    p = p * t + Vector(repeating: -1.265_512_23)
    return t * exp(p - z * z)
  }

  /// The exact GELU x * Phi(x) = x * erfc(-x / sqrt 2) / 2, through `erfcNonNegative` on |x|:
  /// within 1e-6 relative of the double-precision value for x >= -3, and a few 1e-6 further out
  /// (float rounding of z^2), where GELU is below 1e-2 in magnitude.
  @inline(__always)
  static func gelu(_ x: Vector) -> Vector {
    let z = x.replacing(with: -x, where: x .< 0) * Vector(repeating: 0.707_106_781_186_547_52)
    let tail = Vector(repeating: 0.5) * erfcNonNegative(z)
    return x * tail.replacing(with: Vector(repeating: 1) - tail, where: x .>= 0)
  }

  /// Applies `function` to every element, eight at a time; the tail goes through a padded vector.
  @inline(__always)
  static func map(_ values: UnsafeMutableBufferPointer<Float>, _ function: (Vector) -> Vector) {
    guard let base = values.baseAddress else { return }
    let whole = values.count & ~7
    var index = 0
    while index < whole {
      let pointer = UnsafeMutableRawPointer(base + index)
      pointer.storeBytes(of: function(pointer.loadUnaligned(as: Vector.self)), as: Vector.self)
      index &+= 8
    }
    guard index < values.count else { return }
    var tail = Vector(repeating: 0)
    for lane in 0..<(values.count &- index) { tail[lane] = base[index &+ lane] }
    let mapped = function(tail)
    for lane in 0..<(values.count &- index) { base[index &+ lane] = mapped[lane] }
  }
}
