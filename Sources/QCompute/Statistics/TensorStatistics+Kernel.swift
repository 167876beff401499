/// The per-block kernel: one block is small enough to stay in L1 while it is read twice.
extension TensorStatistics {
  /// Elements per block: 16 KiB of `Float`, read once for sums and once for squared deviations.
  static let blockSize = 4096

  /// Statistics of one block of at most `blockSize` elements, by an exact two-pass method.
  ///
  /// The first pass finds counts, extremes and the sum in `Double`; the second sums squared
  /// deviations from the block mean, so no cancellation of large squares can happen.
  static func _block(_ block: UnsafeBufferPointer<Float>) -> TensorStatistics {
    var result = TensorStatistics()
    let n = block.count
    guard n > 0, let base = block.baseAddress else { return result }
    let vectorCount = n / 8
    let raw = UnsafeRawPointer(base)

    // Pass 1: counts, extremes, sum. Counters are Int32 lanes; a block has at most 4096 elements.
    var finiteLanes = SIMD8<Int32>()
    var zeroLanes = SIMD8<Int32>()
    var nanLanes = SIMD8<Int32>()
    var minLanes = SIMD8<Float>(repeating: .infinity)
    var maxLanes = SIMD8<Float>(repeating: -.infinity)
    var sum0 = SIMD8<Double>()
    var sum1 = SIMD8<Double>()
    var i = 0
    while i < vectorCount {
      let v = raw.loadUnaligned(fromByteOffset: i &* 32, as: SIMD8<Float>.self)
      // x - x is 0 exactly for finite x and NaN for NaN and both infinities.
      let finite = (v - v) .== 0
      let one = SIMD8<Int32>(repeating: 1)
      finiteLanes &+= SIMD8<Int32>().replacing(with: one, where: finite)
      zeroLanes &+= SIMD8<Int32>().replacing(with: one, where: v .== 0)
      nanLanes &+= SIMD8<Int32>().replacing(with: one, where: v .!= v)
      // Compare-and-select rather than the generic pointwiseMin/Max, which are not inlined.
      // Non-finite lanes fail both comparisons (NaN) or are excluded by the mask (infinities).
      minLanes.replace(with: v, where: finite .& (v .< minLanes))
      maxLanes.replace(with: v, where: finite .& (v .> maxLanes))
      let d = SIMD8<Double>(v.replacing(with: 0, where: .!finite))
      if i & 1 == 0 { sum0 += d } else { sum1 += d }
      i &+= 1
    }
    let vectorFiniteCount = Int(finiteLanes.wrappedSum())
    var finiteCount = vectorFiniteCount
    var zeroCount = Int(zeroLanes.wrappedSum())
    var nanCount = Int(nanLanes.wrappedSum())
    var minValue = minLanes.min()
    var maxValue = maxLanes.max()
    var sum = (sum0 + sum1).sum()
    var j = vectorCount &* 8
    while j < n {
      let x = base[j]
      if x.isFinite {
        finiteCount &+= 1
        minValue = Swift.min(minValue, x)
        maxValue = Swift.max(maxValue, x)
        sum += Double(x)
      } else if x.isNaN {
        nanCount &+= 1
      }
      if x == 0 { zeroCount &+= 1 }
      j &+= 1
    }

    result.count = n
    result.finiteCount = finiteCount
    result.nanCount = nanCount
    result.infCount = n &- finiteCount &- nanCount
    result.zeroCount = zeroCount
    guard finiteCount > 0 else { return result }
    let mean = sum / Double(finiteCount)

    // Pass 2: squared deviations. Non-finite lanes are replaced by the mean rounded to Float;
    // what they add, (Float(mean) - mean)^2 each, is taken off afterwards.
    let meanAsFloat = Float(mean)
    let meanLanes = SIMD8<Double>(repeating: mean)
    var m2a = SIMD8<Double>()
    var m2b = SIMD8<Double>()
    i = 0
    while i < vectorCount {
      let v = raw.loadUnaligned(fromByteOffset: i &* 32, as: SIMD8<Float>.self)
      let clean = v.replacing(with: meanAsFloat, where: .!((v - v) .== 0))
      let d = SIMD8<Double>(clean) - meanLanes
      if i & 1 == 0 { m2a += d * d } else { m2b += d * d }
      i &+= 1
    }
    var m2 = (m2a + m2b).sum()
    let replaced = vectorCount &* 8 &- vectorFiniteCount
    let residual = Double(meanAsFloat) - mean
    m2 -= Double(replaced) * residual * residual
    j = vectorCount &* 8
    while j < n {
      let x = base[j]
      if x.isFinite {
        let d = Double(x) - mean
        m2 += d * d
      }
      j &+= 1
    }
    result._min = minValue
    result._max = maxValue
    result._mean = mean
    result._m2 = Swift.max(m2, 0)
    return result
  }
}
