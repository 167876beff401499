/// Q4_K, Q5_K and Q2_K: 256-value super-blocks whose sub-block scales and mins are quantized again.
extension GGUFBlocks {
  /// ggml's `make_qkx2_quants`: a min/max start, then `steps + 1` rescaled trials, each refitted
  /// by weighted least squares; keeps the trial with the lowest weighted error. Returns the scale
  /// and the (positive) min to subtract.
  static func makeQKX2Quants(
    count n: Int, maxCode: Int, x: UnsafePointer<Float>, weights: UnsafePointer<Float>,
    codes L: UnsafeMutablePointer<UInt8>, scratch Laux: UnsafeMutablePointer<UInt8>,
    rangeMin rmin: Float, rangeDelta rdelta: Float, steps nstep: Int, useAbsoluteError useMad: Bool
  ) -> (scale: Float, min: Float) {
    var low = x[0]
    var high = x[0]
    var sumW = weights[0]
    var sumX = sumW * x[0]
    for i in 1..<n {
      if x[i] < low { low = x[i] }
      if x[i] > high { high = x[i] }
      let w = weights[i]
      sumW += w
      sumX += w * x[i]
    }
    if low > 0 { low = 0 }
    if high == low {
      for i in 0..<n { L[i] = 0 }
      return (0, -low)
    }
    let nmax = Float(maxCode)
    var iscale = nmax / (high - low)
    var scale = 1 / iscale
    var bestError: Float = 0
    for i in 0..<n {
      let l = nearestInt(iscale * (x[i] - low))
      L[i] = UInt8(max(0, min(Int32(maxCode), l)))
      var diff = scale * Float(L[i]) + low - x[i]
      diff = useMad ? abs(diff) : diff * diff
      bestError += weights[i] * diff
    }
    if nstep < 1 { return (scale, -low) }
    for step in 0...nstep {
      iscale = (rmin + rdelta * Float(step) + nmax) / (high - low)
      var sumL: Float = 0
      var sumL2: Float = 0
      var sumXL: Float = 0
      for i in 0..<n {
        let l = max(0, min(Int32(maxCode), nearestInt(iscale * (x[i] - low))))
        Laux[i] = UInt8(l)
        let w = weights[i]
        let lf = Float(l)
        sumL += w * lf
        sumL2 += w * lf * lf
        sumXL += w * lf * x[i]
      }
      let determinant = sumW * sumL2 - sumL * sumL
      if determinant > 0 {
        var thisScale = (sumW * sumXL - sumX * sumL) / determinant
        var thisMin = (sumL2 * sumX - sumL * sumXL) / determinant
        if thisMin > 0 {
          thisMin = 0
          thisScale = sumXL / sumL2
        }
        var error: Float = 0
        for i in 0..<n {
          var diff = thisScale * Float(Laux[i]) + thisMin - x[i]
          diff = useMad ? abs(diff) : diff * diff
          error += weights[i] * diff
        }
        if error < bestError {
          for i in 0..<n { L[i] = Laux[i] }
          bestError = error
          scale = thisScale
          low = thisMin
        }
      }
    }
    return (scale, -low)
  }

  /// Stack scratch for one super-block: codes, trial codes, weights, and per-sub-block scales and mins.
  private static func withKQuantScratch(
    codes: Int, subBlock: Int, subBlocks: Int,
    _ body: (
      UnsafeMutablePointer<UInt8>, UnsafeMutablePointer<UInt8>, UnsafeMutablePointer<Float>,
      UnsafeMutablePointer<Float>, UnsafeMutablePointer<Float>
    ) -> Void
  ) {
    withUnsafeTemporaryAllocation(of: UInt8.self, capacity: codes + subBlock) { bytes in
      withUnsafeTemporaryAllocation(of: Float.self, capacity: subBlock + 2 * subBlocks) { floats in
        guard let byteBase = bytes.baseAddress, let floatBase = floats.baseAddress else { return }
        byteBase.initialize(repeating: 0, count: codes + subBlock)
        floatBase.initialize(repeating: 0, count: subBlock + 2 * subBlocks)
        body(
          byteBase, byteBase + codes, floatBase, floatBase + subBlock,
          floatBase + subBlock + subBlocks)
      }
    }
  }

  /// ggml's `get_scale_min_k4`: the 6-bit scale and min of sub-block `j` from the 12 packed bytes.
  @inline(__always)
  static func scaleMinK4(_ j: Int, _ q: UnsafeRawBufferPointer, at offset: Int) -> (UInt8, UInt8) {
    if j < 4 {
      return (q[offset + j] & 63, q[offset + j + 4] & 63)
    }
    let scale = (q[offset + j + 4] & 0xF) | ((q[offset + j - 4] >> 6) << 4)
    let minimum = (q[offset + j + 4] >> 4) | ((q[offset + j] >> 6) << 4)
    return (scale, minimum)
  }

  /// `quantize_row_q4_K_ref`. Layout: f16 d, f16 dmin, scales[12], qs[128].
  static func encodeQ4_K(_ x: UnsafeBufferPointer<Float>, into block: UnsafeMutableRawBufferPointer) {
    withKQuantScratch(codes: 256, subBlock: 32, subBlocks: 8) { L, Laux, weights, scales, mins in
      encodeScaleMinK4(
        x, into: block, codes: L, scratch: Laux, weights: weights, scales: scales, mins: mins,
        maxCode: 15, rangeMin: -1, steps: 20)
      for chunk in 0..<4 {
        for l in 0..<32 {
          block[16 + 32 * chunk + l] = L[64 * chunk + l] | (L[64 * chunk + l + 32] << 4)
        }
      }
    }
  }

  /// `quantize_row_q5_K_ref`. Layout: f16 d, f16 dmin, scales[12] (as Q4_K), qh[32], qs[128].
  static func encodeQ5_K(_ x: UnsafeBufferPointer<Float>, into block: UnsafeMutableRawBufferPointer) {
    withKQuantScratch(codes: 256, subBlock: 32, subBlocks: 8) { L, Laux, weights, scales, mins in
      encodeScaleMinK4(
        x, into: block, codes: L, scratch: Laux, weights: weights, scales: scales, mins: mins,
        maxCode: 31, rangeMin: -0.5, steps: 15)
      let qh = 16
      let ql = 48
      for index in 0..<32 { block[qh + index] = 0 }
      var mask1: UInt8 = 1
      var mask2: UInt8 = 2
      for chunk in 0..<4 {
        let n = 64 * chunk
        for j in 0..<32 {
          var l1 = L[n + j]
          if l1 > 15 {
            l1 -= 16
            block[qh + j] |= mask1
          }
          var l2 = L[n + j + 32]
          if l2 > 15 {
            l2 -= 16
            block[qh + j] |= mask2
          }
          block[ql + 32 * chunk + j] = l1 | (l2 << 4)
        }
        mask1 <<= 2
        mask2 <<= 2
      }
    }
  }

  /// What Q4_K and Q5_K share: each sub-block of 32 fitted by `make_qkx2_quants`, the scales and
  /// mins quantized to 6 bits against f16 `d` and `dmin` (bytes 0-15), and every code refitted
  /// to the stored scales, into `codes[0..<256]` in `0...maxCode`.
  private static func encodeScaleMinK4(
    _ x: UnsafeBufferPointer<Float>, into block: UnsafeMutableRawBufferPointer,
    codes L: UnsafeMutablePointer<UInt8>, scratch Laux: UnsafeMutablePointer<UInt8>,
    weights: UnsafeMutablePointer<Float>, scales: UnsafeMutablePointer<Float>,
    mins: UnsafeMutablePointer<Float>, maxCode: Int, rangeMin: Float, steps: Int
  ) {
    guard let source = x.baseAddress else { return }
    var maxScale: Float = 0
    var maxMin: Float = 0
    for j in 0..<8 {
      var sumX2: Float = 0
      for l in 0..<32 { sumX2 += x[32 * j + l] * x[32 * j + l] }
      let average = (sumX2 / 32).squareRoot()
      for l in 0..<32 { weights[l] = average + abs(x[32 * j + l]) }
      let (scale, minimum) = makeQKX2Quants(
        count: 32, maxCode: maxCode, x: source + 32 * j, weights: weights, codes: L + 32 * j,
        scratch: Laux, rangeMin: rangeMin, rangeDelta: 0.1, steps: steps, useAbsoluteError: false)
      scales[j] = scale
      mins[j] = minimum
      if scale > maxScale { maxScale = scale }
      if minimum > maxMin { maxMin = minimum }
    }
    let inverseScale: Float = maxScale > 0 ? 63 / maxScale : 0
    let inverseMin: Float = maxMin > 0 ? 63 / maxMin : 0
    let packed = 4
    for index in 0..<12 { block[packed + index] = 0 }
    for j in 0..<8 {
      let ls = min(63, UInt8(truncatingIfNeeded: nearestInt(inverseScale * scales[j])))
      let lm = min(63, UInt8(truncatingIfNeeded: nearestInt(inverseMin * mins[j])))
      if j < 4 {
        block[packed + j] = ls
        block[packed + j + 4] = lm
      } else {
        block[packed + j + 4] = (ls & 0xF) | ((lm & 0xF) << 4)
        block[packed + j - 4] |= (ls >> 4) << 6
        block[packed + j] |= (lm >> 4) << 6
      }
    }
    storeHalf(maxScale / 63, into: block, at: 0)
    storeHalf(maxMin / 63, into: block, at: 2)
    let view = UnsafeRawBufferPointer(block)
    let d = loadHalf(view, at: 0)
    let dmin = loadHalf(view, at: 2)
    for j in 0..<8 {
      let (sc, m) = scaleMinK4(j, view, at: packed)
      let step = d * Float(sc)
      if step == 0 { continue }
      let offset = dmin * Float(m)
      for ii in 0..<32 {
        let l = nearestInt((x[32 * j + ii] + offset) / step)
        L[32 * j + ii] = UInt8(max(0, min(Int32(maxCode), l)))
      }
    }
  }

  static func decodeQ4_K(_ block: UnsafeRawBufferPointer, into y: UnsafeMutableBufferPointer<Float>) {
    let d = loadHalf(block, at: 0)
    let dmin = loadHalf(block, at: 2)
    for chunk in 0..<4 {
      let (sc1, m1) = scaleMinK4(2 * chunk, block, at: 4)
      let (sc2, m2) = scaleMinK4(2 * chunk + 1, block, at: 4)
      let d1 = d * Float(sc1)
      let min1 = dmin * Float(m1)
      let d2 = d * Float(sc2)
      let min2 = dmin * Float(m2)
      for l in 0..<32 {
        let byte = block[16 + 32 * chunk + l]
        y[64 * chunk + l] = d1 * Float(byte & 0xF) - min1
        y[64 * chunk + 32 + l] = d2 * Float(byte >> 4) - min2
      }
    }
  }

  /// `quantize_row_q2_K_ref`. Layout: scales[16] (low nibble scale, high nibble min), qs[64],
  /// f16 d, f16 dmin.
  static func encodeQ2_K(_ x: UnsafeBufferPointer<Float>, into block: UnsafeMutableRawBufferPointer) {
    withKQuantScratch(codes: 256, subBlock: 16, subBlocks: 16) { L, Laux, weights, scales, mins in
      encodeQ2_K(x, into: block, L, Laux, weights, scales, mins)
    }
  }

  private static func encodeQ2_K(
    _ x: UnsafeBufferPointer<Float>, into block: UnsafeMutableRawBufferPointer,
    _ L: UnsafeMutablePointer<UInt8>, _ Laux: UnsafeMutablePointer<UInt8>,
    _ weights: UnsafeMutablePointer<Float>, _ scales: UnsafeMutablePointer<Float>,
    _ mins: UnsafeMutablePointer<Float>
  ) {
    guard let source = x.baseAddress else { return }
    let q4scale: Float = 15
    var maxScale: Float = 0
    var maxMin: Float = 0
    for j in 0..<16 {
      for l in 0..<16 { weights[l] = abs(x[16 * j + l]) }
      let (scale, minimum) = makeQKX2Quants(
        count: 16, maxCode: 3, x: source + 16 * j, weights: weights, codes: L + 16 * j,
        scratch: Laux, rangeMin: -0.5, rangeDelta: 0.1, steps: 15, useAbsoluteError: true)
      scales[j] = scale
      mins[j] = minimum
      if scale > maxScale { maxScale = scale }
      if minimum > maxMin { maxMin = minimum }
    }
    let dOffset = 80
    let dminOffset = 82
    if maxScale > 0 {
      let iscale = q4scale / maxScale
      for j in 0..<16 { block[j] = UInt8(truncatingIfNeeded: nearestInt(iscale * scales[j])) }
      storeHalf(maxScale / q4scale, into: block, at: dOffset)
    } else {
      for j in 0..<16 { block[j] = 0 }
      storeHalf(0, into: block, at: dOffset)
    }
    if maxMin > 0 {
      let iscale = q4scale / maxMin
      for j in 0..<16 {
        block[j] |= UInt8(truncatingIfNeeded: nearestInt(iscale * mins[j]) << 4)
      }
      storeHalf(maxMin / q4scale, into: block, at: dminOffset)
    } else {
      storeHalf(0, into: block, at: dminOffset)
    }
    let view = UnsafeRawBufferPointer(block)
    let d = loadHalf(view, at: dOffset)
    let dmin = loadHalf(view, at: dminOffset)
    for j in 0..<16 {
      let step = d * Float(block[j] & 0xF)
      if step == 0 { continue }
      let offset = dmin * Float(block[j] >> 4)
      for ii in 0..<16 {
        let l = nearestInt((x[16 * j + ii] + offset) / step)
        L[16 * j + ii] = UInt8(max(0, min(3, l)))
      }
    }
    for half in 0..<2 {
      let j = 128 * half
      for l in 0..<32 {
        block[16 + j / 4 + l] =
          L[j + l] | (L[j + l + 32] << 2) | (L[j + l + 64] << 4) | (L[j + l + 96] << 6)
      }
    }
  }

  static func decodeQ2_K(_ block: UnsafeRawBufferPointer, into y: UnsafeMutableBufferPointer<Float>) {
    let d = loadHalf(block, at: 80)
    let dmin = loadHalf(block, at: 82)
    var output = 0
    var scaleIndex = 0
    for half in 0..<2 {
      let q = 16 + 32 * half
      for shift in stride(from: 0, to: 8, by: 2) {
        for part in 0..<2 {
          let sc = block[scaleIndex]
          scaleIndex += 1
          let dl = d * Float(sc & 0xF)
          let ml = dmin * Float(sc >> 4)
          for l in 0..<16 {
            y[output] = dl * Float((block[q + 16 * part + l] >> UInt8(shift)) & 3) - ml
            output += 1
          }
        }
      }
    }
  }
}

/// Q3_K, Q5_K and Q6_K decoders (ggml's `dequantize_row_*`).
extension GGUFBlocks {
  /// Layout: hmask[32], qs[64], scales[12] (sixteen 6-bit scales), f16 d.
  ///
  /// y = d * (scale - 32) * (q - (high bit clear ? 4 : 0)).
  static func decodeQ3_K(_ block: UnsafeRawBufferPointer, into y: UnsafeMutableBufferPointer<Float>) {
    let dAll = loadHalf(block, at: 108)
    // The 12 scale bytes as ggml's aux[0..2], unpacked into four words of four 6-bit values.
    func word(_ index: Int) -> UInt32 {
      UInt32(littleEndian: block.loadUnaligned(fromByteOffset: 96 + 4 * index, as: UInt32.self))
    }
    let kmask1: UInt32 = 0x0303_0303
    let kmask2: UInt32 = 0x0F0F_0F0F
    let (aux0, aux1, tmp) = (word(0), word(1), word(2))
    let words = [
      (aux0 & kmask2) | ((tmp & kmask1) << 4),
      (aux1 & kmask2) | (((tmp >> 2) & kmask1) << 4),
      ((aux0 >> 4) & kmask2) | (((tmp >> 4) & kmask1) << 4),
      ((aux1 >> 4) & kmask2) | (((tmp >> 6) & kmask1) << 4),
    ]
    func scale(_ index: Int) -> Int {
      Int(Int8(bitPattern: UInt8(truncatingIfNeeded: words[index / 4] >> UInt32(8 * (index % 4)))))
    }
    var output = 0
    var scaleIndex = 0
    var mask: UInt8 = 1
    for half in 0..<2 {
      let q = 32 + 32 * half
      for shift in stride(from: 0, to: 8, by: 2) {
        for part in 0..<2 {
          let dl = dAll * Float(scale(scaleIndex) - 32)
          scaleIndex += 1
          for l in 0..<16 {
            let low = Int((block[q + 16 * part + l] >> UInt8(shift)) & 3)
            let high = block[16 * part + l] & mask != 0 ? 0 : 4
            y[output] = dl * Float(low - high)
            output += 1
          }
        }
        mask <<= 1
      }
    }
  }

  /// Layout: f16 d, f16 dmin, scales[12] (as Q4_K), qh[32], qs[128].
  ///
  /// y = d * scale * q - dmin * min, q's fifth bit from qh.
  static func decodeQ5_K(_ block: UnsafeRawBufferPointer, into y: UnsafeMutableBufferPointer<Float>) {
    let d = loadHalf(block, at: 0)
    let dmin = loadHalf(block, at: 2)
    for chunk in 0..<4 {
      let (sc1, m1) = scaleMinK4(2 * chunk, block, at: 4)
      let (sc2, m2) = scaleMinK4(2 * chunk + 1, block, at: 4)
      let d1 = d * Float(sc1)
      let min1 = dmin * Float(m1)
      let d2 = d * Float(sc2)
      let min2 = dmin * Float(m2)
      let bit1: UInt8 = 1 << UInt8(2 * chunk)
      let bit2: UInt8 = 2 << UInt8(2 * chunk)
      for l in 0..<32 {
        let byte = block[48 + 32 * chunk + l]
        let high = block[16 + l]
        y[64 * chunk + l] = d1 * Float(Int(byte & 0xF) + (high & bit1 != 0 ? 16 : 0)) - min1
        y[64 * chunk + 32 + l] = d2 * Float(Int(byte >> 4) + (high & bit2 != 0 ? 16 : 0)) - min2
      }
    }
  }

  /// Layout: ql[128], qh[64], int8 scales[16], f16 d; y = d * scale * (q - 32).
  static func decodeQ6_K(_ block: UnsafeRawBufferPointer, into y: UnsafeMutableBufferPointer<Float>) {
    let d = loadHalf(block, at: 208)
    for half in 0..<2 {
      let ql = 64 * half
      let qh = 128 + 32 * half
      let sc = 192 + 8 * half
      let out = 128 * half
      for l in 0..<32 {
        let scaleIndex = l / 16
        let high = Int(block[qh + l])
        let q1 = (Int(block[ql + l] & 0xF) | ((high & 3) << 4)) - 32
        let q2 = (Int(block[ql + l + 32] & 0xF) | (((high >> 2) & 3) << 4)) - 32
        let q3 = (Int(block[ql + l] >> 4) | (((high >> 4) & 3) << 4)) - 32
        let q4 = (Int(block[ql + l + 32] >> 4) | (((high >> 6) & 3) << 4)) - 32
        func scale(_ k: Int) -> Float { Float(Int8(bitPattern: block[sc + scaleIndex + k])) }
        y[out + l] = d * scale(0) * Float(q1)
        y[out + l + 32] = d * scale(2) * Float(q2)
        y[out + l + 64] = d * scale(4) * Float(q3)
        y[out + l + 96] = d * scale(6) * Float(q4)
      }
    }
  }
}
