/// Q8_0 and Q4_0: one f16 scale per 32 values.
extension GGUFBlocks {
  /// `quantize_row_q8_0_ref`: d = absmax / 127, q = roundf(x / d) (half away from zero).
  static func encodeQ8_0(_ x: UnsafeBufferPointer<Float>, into block: UnsafeMutableRawBufferPointer) {
    var absMax: Float = 0
    for value in x { absMax = max(absMax, abs(value)) }
    let d = absMax / 127
    let inverse: Float = d != 0 ? 1 / d : 0
    storeHalf(d, into: block, at: 0)
    for index in 0..<32 {
      let scaled = (x[index] * inverse).rounded(.toNearestOrAwayFromZero)
      let code = scaled.isNaN ? 0 : Int8(min(max(scaled, -128), 127))
      block[2 + index] = UInt8(bitPattern: code)
    }
  }

  static func decodeQ8_0(_ block: UnsafeRawBufferPointer, into y: UnsafeMutableBufferPointer<Float>) {
    let d = loadHalf(block, at: 0)
    for index in 0..<32 {
      y[index] = Float(Int8(bitPattern: block[2 + index])) * d
    }
  }

  /// `quantize_row_q4_0_ref`: d = (signed absmax) / -8, q = min(15, (int8)(x / d + 8.5)).
  static func encodeQ4_0(_ x: UnsafeBufferPointer<Float>, into block: UnsafeMutableRawBufferPointer) {
    var absMax: Float = 0
    var signedMax: Float = 0
    for value in x where absMax < abs(value) {
      absMax = abs(value)
      signedMax = value
    }
    let d = signedMax / -8
    let inverse: Float = d != 0 ? 1 / d : 0
    storeHalf(d, into: block, at: 0)
    @inline(__always) func code(_ value: Float) -> UInt8 {
      let shifted = value * inverse + 8.5
      // (int8_t) truncates toward zero; the value is in [0, 17) for finite input.
      let truncated = shifted.isNaN ? 0 : Int(min(max(shifted, -128), 127))
      return UInt8(min(15, max(truncated, 0)))
    }
    storeFourBitCodes({ code(x[$0]) }, into: block, at: 2)
  }

  static func decodeQ4_0(_ block: UnsafeRawBufferPointer, into y: UnsafeMutableBufferPointer<Float>) {
    let d = loadHalf(block, at: 0)
    for index in 0..<16 {
      let byte = block[2 + index]
      y[index] = Float(Int(byte & 0x0F) - 8) * d
      y[index + 16] = Float(Int(byte >> 4) - 8) * d
    }
  }
}

/// Q4_1, Q5_0, Q5_1 and IQ4_NL: 32 values per block.
extension GGUFBlocks {
  /// C's `(int8_t)` / `(uint8_t)` cast of a float: truncation toward zero, NaN as 0, clamped to
  /// `range` where C would be undefined.
  @inline(__always)
  static func truncatedCode(_ value: Float, in range: ClosedRange<Float>) -> Int {
    value.isNaN ? 0 : Int(min(max(value, range.lowerBound), range.upperBound))
  }

  /// Stores 32 four-bit codes from byte `offset`: codes j and j + 16 share byte j, low nibble first.
  @inline(__always)
  static func storeFourBitCodes(_ code: (Int) -> UInt8, into block: UnsafeMutableRawBufferPointer, at offset: Int) {
    for index in 0..<16 { block[offset + index] = code(index) | (code(index + 16) << 4) }
  }

  /// Stores 32 five-bit codes as ggml's Q5 blocks hold them: their low nibbles as
  /// `storeFourBitCodes` does from byte `quants`, their fifth bits as the `qh` word at byte `high`.
  @inline(__always)
  static func storeFiveBitCodes(
    _ code: (Int) -> Int, into block: UnsafeMutableRawBufferPointer, highBitsAt high: Int, quantsAt quants: Int
  ) {
    var qh: UInt32 = 0
    for index in 0..<16 {
      let first = code(index)
      let second = code(index + 16)
      block[quants + index] = UInt8(first & 0x0F) | (UInt8(second & 0x0F) << 4)
      qh |= highBits(first, second, at: index)
    }
    block.storeBytes(of: qh.littleEndian, toByteOffset: high, as: UInt32.self)
  }

  /// Stores the fifth bits of 32 codes as ggml's little-endian `qh` word: bit j for value j.
  @inline(__always)
  static func highBits(_ low: Int, _ high: Int, at index: Int) -> UInt32 {
    UInt32((low & 0x10) >> 4) << UInt32(index) | UInt32((high & 0x10) >> 4) << UInt32(index + 16)
  }

  /// `quantize_row_q4_1_ref`: d = (max - min) / 15, m = min, q = min(15, (int8)((x - min) / d + 0.5)).
  static func encodeQ4_1(_ x: UnsafeBufferPointer<Float>, into block: UnsafeMutableRawBufferPointer) {
    var low = Float.greatestFiniteMagnitude
    var high = -Float.greatestFiniteMagnitude
    for value in x {
      if value < low { low = value }
      if value > high { high = value }
    }
    let d = (high - low) / 15
    let inverse: Float = d != 0 ? 1 / d : 0
    storeHalf(d, into: block, at: 0)
    storeHalf(low, into: block, at: 2)
    @inline(__always) func code(_ value: Float) -> UInt8 {
      UInt8(min(15, max(0, truncatedCode((value - low) * inverse + 0.5, in: -128...127))))
    }
    storeFourBitCodes({ code(x[$0]) }, into: block, at: 4)
  }

  /// `quantize_row_q5_0_ref`: d = (signed absmax) / -16, q = min(31, (int8)(x / d + 16.5)).
  static func encodeQ5_0(_ x: UnsafeBufferPointer<Float>, into block: UnsafeMutableRawBufferPointer) {
    var absMax: Float = 0
    var signedMax: Float = 0
    for value in x where absMax < abs(value) {
      absMax = abs(value)
      signedMax = value
    }
    let d = signedMax / -16
    let inverse: Float = d != 0 ? 1 / d : 0
    storeHalf(d, into: block, at: 0)
    @inline(__always) func code(_ value: Float) -> Int {
      min(31, max(0, truncatedCode(value * inverse + 16.5, in: -128...127)))
    }
    storeFiveBitCodes({ code(x[$0]) }, into: block, highBitsAt: 2, quantsAt: 6)
  }

  /// `quantize_row_q5_1_ref`: d = (max - min) / 31, m = min, q = (uint8)((x - min) / d + 0.5).
  static func encodeQ5_1(_ x: UnsafeBufferPointer<Float>, into block: UnsafeMutableRawBufferPointer) {
    var low = Float.greatestFiniteMagnitude
    var high = -Float.greatestFiniteMagnitude
    for value in x {
      if value < low { low = value }
      if value > high { high = value }
    }
    let d = (high - low) / 31
    let inverse: Float = d != 0 ? 1 / d : 0
    storeHalf(d, into: block, at: 0)
    storeHalf(low, into: block, at: 2)
    @inline(__always) func code(_ value: Float) -> Int {
      truncatedCode((value - low) * inverse + 0.5, in: 0...255)
    }
    storeFiveBitCodes({ code(x[$0]) }, into: block, highBitsAt: 4, quantsAt: 8)
  }

  /// ggml's `best_index_int8`: the grid entry nearest `x` (ties to the upper one), by bisection.
  @inline(__always)
  static func bestIndex(_ grid: UnsafeBufferPointer<Int8>, _ x: Float) -> Int {
    let n = grid.count
    if x <= Float(grid[0]) { return 0 }
    if x >= Float(grid[n - 1]) { return n - 1 }
    var lower = 0
    var upper = n - 1
    while upper - lower > 1 {
      let middle = (lower + upper) / 2
      if x < Float(grid[middle]) { upper = middle } else { lower = middle }
    }
    return x - Float(grid[upper - 1]) < Float(grid[upper]) - x ? upper - 1 : upper
  }

  /// `quantize_iq4_nl` without an importance matrix, as llama-quantize writes IQ4_NL: weights
  /// x^2, a start at d = max / 127, then 15 trial scales (-max / (127 -+ 7)) refitted by weighted
  /// least squares, keeping the best, and the codes chosen again for the kept scale.
  ///
  /// (ggml's `quantize_row_iq4_nl_ref` skips the trials and the final re-pick, and leaves an
  /// all-zero block's codes to whatever the previous block left behind; llama-quantize does not
  /// use it.)
  static func encodeIQ4_NL(
    _ x: UnsafeBufferPointer<Float>, into block: UnsafeMutableRawBufferPointer
  ) {
    let tries = 7
    iq4NLValues.withUnsafeBufferPointer { grid in
      withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 32) { L in
        var absMax: Float = 0
        var signedMax: Float = 0
        for value in x where abs(value) > absMax {
          absMax = abs(value)
          signedMax = value
        }
        var scale: Float = 0
        if absMax >= 1e-15 {
          let first = Float(grid[0])
          var d = -signedMax / first
          var id = 1 / d
          var sumQX: Float = 0
          var sumQ2: Float = 0
          for j in 0..<32 {
            let l = bestIndex(grid, id * x[j])
            L[j] = UInt8(l)
            let q = Float(grid[l])
            let w = x[j] * x[j]
            sumQX += w * q * x[j]
            sumQ2 += w * q * q
          }
          d = sumQ2 > 0 ? sumQX / sumQ2 : 0
          var best = d * sumQX
          for attempt in -tries...tries {
            id = Float(attempt + Int(grid[0])) / signedMax
            sumQX = 0
            sumQ2 = 0
            for j in 0..<32 {
              let q = Float(grid[bestIndex(grid, id * x[j])])
              let w = x[j] * x[j]
              sumQX += w * q * x[j]
              sumQ2 += w * q * q
            }
            if sumQ2 > 0 && sumQX * sumQX > best * sumQ2 {
              d = sumQX / sumQ2
              best = d * sumQX
            }
          }
          scale = d
        }
        storeHalf(scale, into: block, at: 0)
        let inverse: Float = scale != 0 ? 1 / scale : 0
        for j in 0..<32 { L[j] = UInt8(bestIndex(grid, inverse * x[j])) }
        for j in 0..<16 { block[2 + j] = L[j] | (L[16 + j] << 4) }
      }
    }
  }

  /// Layout: f16 d, f16 m, qs[16]; y = q * d + m, low nibbles first.
  static func decodeQ4_1(_ block: UnsafeRawBufferPointer, into y: UnsafeMutableBufferPointer<Float>) {
    let d = loadHalf(block, at: 0)
    let m = loadHalf(block, at: 2)
    for index in 0..<16 {
      let byte = block[4 + index]
      y[index] = Float(byte & 0x0F) * d + m
      y[index + 16] = Float(byte >> 4) * d + m
    }
  }

  /// Layout: f16 d, qh[4] (bit j is the fifth bit of value j), qs[16]; y = (q - 16) * d.
  static func decodeQ5_0(_ block: UnsafeRawBufferPointer, into y: UnsafeMutableBufferPointer<Float>) {
    let d = loadHalf(block, at: 0)
    let qh = UInt32(littleEndian: block.loadUnaligned(fromByteOffset: 2, as: UInt32.self))
    for index in 0..<16 {
      let byte = block[6 + index]
      let high0 = Int((qh >> UInt32(index)) << 4) & 0x10
      let high1 = Int(qh >> UInt32(index + 12)) & 0x10
      y[index] = Float((Int(byte & 0x0F) | high0) - 16) * d
      y[index + 16] = Float((Int(byte >> 4) | high1) - 16) * d
    }
  }

  /// Layout: f16 d, f16 m, qh[4], qs[16]; y = q * d + m.
  static func decodeQ5_1(_ block: UnsafeRawBufferPointer, into y: UnsafeMutableBufferPointer<Float>) {
    let d = loadHalf(block, at: 0)
    let m = loadHalf(block, at: 2)
    let qh = UInt32(littleEndian: block.loadUnaligned(fromByteOffset: 4, as: UInt32.self))
    for index in 0..<16 {
      let byte = block[8 + index]
      let high0 = Int((qh >> UInt32(index)) << 4) & 0x10
      let high1 = Int(qh >> UInt32(index + 12)) & 0x10
      y[index] = Float(Int(byte & 0x0F) | high0) * d + m
      y[index + 16] = Float(Int(byte >> 4) | high1) * d + m
    }
  }

  /// ggml's `kvalues_iq4nl`: the non-linear 4-bit grid.
  static let iq4NLValues: [Int8] = [
    -127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113,
  ]

  /// Layout: f16 d, qs[16]; y = d * grid[q].
  static func decodeIQ4_NL(
    _ block: UnsafeRawBufferPointer, into y: UnsafeMutableBufferPointer<Float>
  ) {
    let d = loadHalf(block, at: 0)
    iq4NLValues.withUnsafeBufferPointer { grid in
      for index in 0..<16 {
        let byte = block[2 + index]
        y[index] = d * Float(grid[Int(byte & 0x0F)])
        y[index + 16] = d * Float(grid[Int(byte >> 4)])
      }
    }
  }
}
