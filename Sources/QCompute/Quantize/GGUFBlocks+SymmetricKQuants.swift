/// Q3_K and Q6_K encoders: 256-value super-blocks of sixteen 16-value sub-blocks with signed
/// scales and no min, following ggml's `quantize_row_q3_K_ref` / `quantize_row_q6_K_ref`.
extension GGUFBlocks {
  /// ggml's `GROUP_MAX_EPS`: a group whose absmax is below this is all zero.
  static let groupMaxEpsilon: Float = 1e-15

  /// The entry of largest magnitude, keeping its sign (the first one on ties).
  @inline(__always)
  private static func signedAbsMax(_ x: UnsafePointer<Float>, count n: Int) -> (Float, Float) {
    var absMax: Float = 0
    var signedMax: Float = 0
    for i in 0..<n where abs(x[i]) > absMax {
      absMax = abs(x[i])
      signedMax = x[i]
    }
    return (absMax, signedMax)
  }

  /// ggml's `make_qx_quants` with `rmse_type` 1: codes in [0, 2 nmax) around nmax, each element
  /// weighted by `weights` (an importance matrix's, `quant_weights`) or else by x^2, and 18
  /// rescaled trials kept when they fit better.
  static func makeQXQuants(
    count n: Int, maxCode nmax: Int, x: UnsafePointer<Float>, codes L: UnsafeMutablePointer<Int8>,
    weights: UnsafePointer<Float>? = nil
  ) -> Float {
    let (absMax, signedMax) = signedAbsMax(x, count: n)
    if absMax < groupMaxEpsilon {
      for i in 0..<n { L[i] = 0 }
      return 0
    }
    let top = Int32(nmax)
    @inline(__always) func clamped(_ value: Float) -> Int32 {
      max(-top, min(top - 1, nearestInt(value)))
    }
    var iscale = -Float(nmax) / signedMax
    var sumLX: Float = 0
    var sumL2: Float = 0
    for i in 0..<n {
      let l = clamped(iscale * x[i])
      L[i] = Int8(l + top)
      let w = weights?[i] ?? x[i] * x[i]
      sumLX += w * x[i] * Float(l)
      sumL2 += w * Float(l) * Float(l)
    }
    var scale: Float = sumL2 != 0 ? sumLX / sumL2 : 0
    var best = scale * sumLX
    for step in -9...9 where step != 0 {
      iscale = -(Float(nmax) + 0.1 * Float(step)) / signedMax
      sumLX = 0
      sumL2 = 0
      for i in 0..<n {
        let l = clamped(iscale * x[i])
        let w = weights?[i] ?? x[i] * x[i]
        sumLX += w * x[i] * Float(l)
        sumL2 += w * Float(l) * Float(l)
      }
      if sumL2 > 0 && sumLX * sumLX > best * sumL2 {
        for i in 0..<n { L[i] = Int8(clamped(iscale * x[i]) + top) }
        scale = sumLX / sumL2
        best = scale * sumLX
      }
    }
    return scale
  }

  /// ggml's `make_q3_quants` with `do_rmse`: codes in [-nmax, nmax), then up to five passes that
  /// move single codes while the x^2-weighted fit improves. Returns codes shifted by nmax.
  static func makeQ3Quants(
    count n: Int, maxCode nmax: Int, x: UnsafePointer<Float>, codes L: UnsafeMutablePointer<Int8>
  ) -> Float {
    let (absMax, signedMax) = signedAbsMax(x, count: n)
    if absMax < groupMaxEpsilon {
      for i in 0..<n { L[i] = 0 }
      return 0
    }
    let top = Int32(nmax)
    let iscale = -Float(nmax) / signedMax
    var sumLX: Float = 0
    var sumL2: Float = 0
    for i in 0..<n {
      let l = max(-top, min(top - 1, nearestInt(iscale * x[i])))
      L[i] = Int8(l)
      let w = x[i] * x[i]
      sumLX += w * x[i] * Float(l)
      sumL2 += w * Float(l) * Float(l)
    }
    for _ in 0..<5 {
      var changed = 0
      for i in 0..<n {
        let w = x[i] * x[i]
        var slx = sumLX - w * x[i] * Float(L[i])
        if slx > 0 {
          var sl2 = sumL2 - w * Float(L[i]) * Float(L[i])
          let newL = max(-top, min(top - 1, nearestInt(x[i] * sl2 / slx)))
          if newL != Int32(L[i]) {
            slx += w * x[i] * Float(newL)
            sl2 += w * Float(newL) * Float(newL)
            if sl2 > 0 && slx * slx * sumL2 > sumLX * sumLX * sl2 {
              L[i] = Int8(newL)
              sumLX = slx
              sumL2 = sl2
              changed += 1
            }
          }
        }
      }
      if changed == 0 { break }
    }
    for i in 0..<n { L[i] += Int8(nmax) }
    return sumL2 > 0 ? sumLX / sumL2 : 0
  }

  /// Stack scratch for one super-block of Q3_K or Q6_K: 256 signed codes (zeroed) and sixteen
  /// sub-block scales.
  private static func withSymmetricKScratch(
    _ x: UnsafeBufferPointer<Float>,
    _ body: (UnsafePointer<Float>, UnsafeMutablePointer<Int8>, UnsafeMutablePointer<Float>) -> Void
  ) {
    withUnsafeTemporaryAllocation(of: Int8.self, capacity: 256) { codes in
      withUnsafeTemporaryAllocation(of: Float.self, capacity: 16) { scaleBuffer in
        guard let L = codes.baseAddress, let scales = scaleBuffer.baseAddress,
          let source = x.baseAddress
        else { return }
        L.initialize(repeating: 0, count: 256)
        body(source, L, scales)
      }
    }
  }

  /// `quantize_row_q3_K_ref`. Layout: hmask[32], qs[64], scales[12] (sixteen 6-bit scales
  /// offset by 32), f16 d.
  static func encodeQ3_K(_ x: UnsafeBufferPointer<Float>, into block: UnsafeMutableRawBufferPointer) {
    withSymmetricKScratch(x) { source, L, scales in encodeQ3_K(source, into: block, L, scales) }
  }

  private static func encodeQ3_K(
    _ x: UnsafePointer<Float>, into block: UnsafeMutableRawBufferPointer,
    _ L: UnsafeMutablePointer<Int8>, _ scales: UnsafeMutablePointer<Float>
  ) {
    let hmask = 0
    let qs = 32
    let packed = 96
    let dOffset = 108
    var maxScale: Float = 0
    var absMax: Float = 0
    for j in 0..<16 {
      scales[j] = makeQ3Quants(count: 16, maxCode: 4, x: x + 16 * j, codes: L + 16 * j)
      if abs(scales[j]) > absMax {
        absMax = abs(scales[j])
        maxScale = scales[j]
      }
    }
    for index in 0..<12 { block[packed + index] = 0 }
    if maxScale != 0 {
      let iscale = -32 / maxScale
      for j in 0..<16 {
        // (int8_t)nearest_int(...), then clamped to [-32, 31] and offset.
        let l = UInt8(
          max(-32, min(31, Int(Int8(truncatingIfNeeded: nearestInt(iscale * scales[j]))))) + 32)
        if j < 8 {
          block[packed + j] = l & 0xF
        } else {
          block[packed + j - 8] |= (l & 0xF) << 4
        }
        block[packed + 8 + j % 4] |= (l >> 4) << UInt8(2 * (j / 4))
      }
      storeHalf(1 / iscale, into: block, at: dOffset)
    } else {
      storeHalf(0, into: block, at: dOffset)
    }
    let d = loadHalf(UnsafeRawBufferPointer(block), at: dOffset)
    for j in 0..<16 {
      let low = j < 8 ? block[packed + j] & 0xF : block[packed + j - 8] >> 4
      let high = (block[packed + 8 + j % 4] >> UInt8(2 * (j / 4))) & 3
      let sc = Int(low | (high << 4)) - 32
      let step = d * Float(sc)
      if step == 0 { continue }
      for ii in 0..<16 {
        let l = max(-4, min(3, nearestInt(x[16 * j + ii] / step)))
        L[16 * j + ii] = Int8(l + 4)
      }
    }
    for index in 0..<32 { block[hmask + index] = 0 }
    var m = 0
    var bit: UInt8 = 1
    for j in 0..<256 {
      if L[j] > 3 {
        block[hmask + m] |= bit
        L[j] -= 4
      }
      m += 1
      if m == 32 {
        m = 0
        bit <<= 1
      }
    }
    for half in 0..<2 {
      let j = 128 * half
      for l in 0..<32 {
        let q0 = UInt8(L[j + l])
        let q1 = UInt8(L[j + l + 32])
        let q2 = UInt8(L[j + l + 64])
        let q3 = UInt8(L[j + l + 96])
        block[qs + j / 4 + l] = q0 | (q1 << 2) | (q2 << 4) | (q3 << 6)
      }
    }
  }

  /// `quantize_row_q6_K_ref`. Layout: ql[128], qh[64], int8 scales[16], f16 d.
  static func encodeQ6_K(_ x: UnsafeBufferPointer<Float>, into block: UnsafeMutableRawBufferPointer) {
    withSymmetricKScratch(x) { source, L, scales in encodeQ6_K(source, into: block, L, scales) }
  }

  private static func encodeQ6_K(
    _ x: UnsafePointer<Float>, into block: UnsafeMutableRawBufferPointer,
    _ L: UnsafeMutablePointer<Int8>, _ scales: UnsafeMutablePointer<Float>
  ) {
    let qhOffset = 128
    let scaleOffset = 192
    let dOffset = 208
    var maxScale: Float = 0
    var maxAbsScale: Float = 0
    for j in 0..<16 {
      let scale = makeQXQuants(count: 16, maxCode: 32, x: x + 16 * j, codes: L + 16 * j)
      scales[j] = scale
      if abs(scale) > maxAbsScale {
        maxAbsScale = abs(scale)
        maxScale = scale
      }
    }
    if maxAbsScale < groupMaxEpsilon {
      for index in 0..<210 { block[index] = 0 }
      return
    }
    let iscale = -128 / maxScale
    storeHalf(1 / iscale, into: block, at: dOffset)
    for j in 0..<16 {
      let scale = Int8(truncatingIfNeeded: min(127, nearestInt(iscale * scales[j])))
      block[scaleOffset + j] = UInt8(bitPattern: scale)
    }
    let d = loadHalf(UnsafeRawBufferPointer(block), at: dOffset)
    for j in 0..<16 {
      let step = d * Float(Int8(bitPattern: block[scaleOffset + j]))
      if step == 0 { continue }
      for ii in 0..<16 {
        let l = max(-32, min(31, nearestInt(x[16 * j + ii] / step)))
        L[16 * j + ii] = Int8(l + 32)
      }
    }
    for half in 0..<2 {
      let j = 128 * half
      let ql = 64 * half
      let qh = qhOffset + 32 * half
      for l in 0..<32 {
        let q1 = UInt8(L[j + l])
        let q2 = UInt8(L[j + l + 32])
        let q3 = UInt8(L[j + l + 64])
        let q4 = UInt8(L[j + l + 96])
        block[ql + l] = (q1 & 0xF) | ((q3 & 0xF) << 4)
        block[ql + l + 32] = (q2 & 0xF) | ((q4 & 0xF) << 4)
        block[qh + l] = (q1 >> 4) | ((q2 >> 4) << 2) | ((q3 >> 4) << 4) | ((q4 >> 4) << 6)
      }
    }
  }
}
