import Foundation

/// Float64 sums over the element pairs (a, b) of two tensors of the same shape, from which every
/// per-tensor metric follows; sums of several tensors merge into per-layer and per-component totals.
public struct DifferenceSums: Sendable, Hashable {
  /// Pairs where both elements are finite (the others are counted in `nonFinite`).
  public var count = 0
  /// Pairs where either element is NaN or infinite; they are left out of the sums.
  public var nonFinite = 0
  /// Sum of a^2 (the old tensor's squared norm).
  public var oldSquares = 0.0
  /// Sum of b^2.
  public var newSquares = 0.0
  /// Sum of a * b.
  public var dot = 0.0
  /// Sum of (a - b)^2.
  public var differenceSquares = 0.0
  /// Largest |a - b|.
  public var maxAbsDifference = 0.0

  public init() {}

  public mutating func merge(_ other: DifferenceSums) {
    count += other.count
    nonFinite += other.nonFinite
    oldSquares += other.oldSquares
    newSquares += other.newSquares
    dot += other.dot
    differenceSquares += other.differenceSquares
    if other.maxAbsDifference > maxAbsDifference { maxAbsDifference = other.maxAbsDifference }
  }

  /// ||a - b|| / ||a||; 0 when both are 0, `nil` when only ||a|| is (the error is unbounded);
  /// NaN when a pair is not finite, as the difference of such a pair is not a number (the
  /// finite pairs alone could look like a perfect match).
  public var relativeL2: Double? {
    if nonFinite > 0 { return .nan }
    if differenceSquares == 0 { return 0 }
    guard oldSquares > 0 else { return nil }
    return (differenceSquares / oldSquares).squareRoot()
  }

  /// a . b / (||a|| ||b||); `nil` when either norm is 0; NaN when a pair is not finite.
  public var cosine: Double? {
    if nonFinite > 0 { return .nan }
    guard oldSquares > 0, newSquares > 0 else { return nil }
    return dot / (oldSquares.squareRoot() * newSquares.squareRoot())
  }

  /// 10 log10(||a||^2 / ||a - b||^2); `nil` when the difference or the signal is 0 (infinite);
  /// NaN when a pair is not finite.
  public var snrDecibels: Double? {
    if nonFinite > 0 { return .nan }
    guard differenceSquares > 0, oldSquares > 0 else { return nil }
    return 10 * log10(oldSquares / differenceSquares)
  }

  /// Largest |a - b|; NaN when a pair is not finite.
  public var largestDifference: Double { nonFinite > 0 ? .nan : maxAbsDifference }

  /// The sums of the finite pairs alone, for two tensors with the same bytes: their non-finite
  /// elements match exactly, so they differ by nothing.
  public var finitePairsOnly: DifferenceSums {
    var sums = self
    sums.nonFinite = 0
    return sums
  }

  /// Adds the pairs of two equally long buffers.
  ///
  /// Eight pairs per step into two independent sets of SIMD4<Double> accumulators keep the
  /// additions pipelined, and the largest difference is kept per lane (a horizontal maximum
  /// per step cost a third of the time); a chunk whose sums come out non-finite is summed
  /// again pair by pair, leaving out the non-finite pairs.
  mutating func add(old a: UnsafeBufferPointer<Float>, new b: UnsafeBufferPointer<Float>) {
    let n = min(a.count, b.count)
    var aa = SIMD4<Double>(), bb = SIMD4<Double>(), ab = SIMD4<Double>(), dd = SIMD4<Double>()
    var aa1 = SIMD4<Double>(), bb1 = SIMD4<Double>(), ab1 = SIMD4<Double>(), dd1 = SIMD4<Double>()
    var top = SIMD4<Double>(), top1 = SIMD4<Double>()
    var i = 0
    if n >= 8, let pa = a.baseAddress, let pb = b.baseAddress {
      let rawA = UnsafeRawPointer(pa)
      let rawB = UnsafeRawPointer(pb)
      while i &+ 8 <= n {
        let offset = i &* 4
        let x8 = rawA.loadUnaligned(fromByteOffset: offset, as: SIMD8<Float>.self)
        let y8 = rawB.loadUnaligned(fromByteOffset: offset, as: SIMD8<Float>.self)
        let x = SIMD4<Double>(x8.lowHalf)
        let y = SIMD4<Double>(y8.lowHalf)
        let x1 = SIMD4<Double>(x8.highHalf)
        let y1 = SIMD4<Double>(y8.highHalf)
        let d = x - y
        let d1 = x1 - y1
        aa += x * x
        bb += y * y
        ab += x * y
        dd += d * d
        aa1 += x1 * x1
        bb1 += y1 * y1
        ab1 += x1 * y1
        dd1 += d1 * d1
        let magnitude = d.replacing(with: -d, where: d .< 0)
        let magnitude1 = d1.replacing(with: -d1, where: d1 .< 0)
        top = top.replacing(with: magnitude, where: magnitude .> top)
        top1 = top1.replacing(with: magnitude1, where: magnitude1 .> top1)
        i &+= 8
      }
    }
    aa += aa1
    bb += bb1
    ab += ab1
    dd += dd1
    top = top.replacing(with: top1, where: top1 .> top)
    var largest = top.max()
    var sa = aa.sum(), sb = bb.sum(), sab = ab.sum(), sd = dd.sum()
    while i < n {
      let x = Double(a[i]), y = Double(b[i]), d = x - y
      sa += x * x
      sb += y * y
      sab += x * y
      sd += d * d
      if abs(d) > largest { largest = abs(d) }
      i &+= 1
    }
    if sa.isFinite && sb.isFinite && sab.isFinite && sd.isFinite {
      count += n
      oldSquares += sa
      newSquares += sb
      dot += sab
      differenceSquares += sd
      if largest > maxAbsDifference { maxAbsDifference = largest }
      return
    }
    for j in 0..<n {
      let x = Double(a[j]), y = Double(b[j])
      guard x.isFinite, y.isFinite else {
        nonFinite += 1
        continue
      }
      let d = x - y
      count += 1
      oldSquares += x * x
      newSquares += y * y
      dot += x * y
      differenceSquares += d * d
      if abs(d) > maxAbsDifference { maxAbsDifference = abs(d) }
    }
  }
}
