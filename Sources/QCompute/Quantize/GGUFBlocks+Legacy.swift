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
