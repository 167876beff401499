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
    for index in 0..<16 {
      block[2 + index] = code(x[index]) | (code(x[index + 16]) << 4)
    }
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

/// Q4_1, Q5_0, Q5_1 and IQ4_NL: 32 values per block, decode only (ggml's `dequantize_row_*`).
extension GGUFBlocks {
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
