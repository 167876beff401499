import CKernels

/// Conversion between checkpoint element types and `Float`.
///
/// Widening reads raw little-endian bytes (which may be unaligned: a safetensors data section
/// starts at `8 + N` for any `N`) and is exact for every float type except F64, which rounds
/// to nearest even. Narrowing rounds to nearest even and follows PyTorch and `ml_dtypes`:
///
/// - F16, BF16: overflow becomes infinity. A NaN stays a NaN with its sign (F16 keeps the top
///   payload bits and sets the quiet bit, as F16C hardware does; BF16 truncates the payload
///   and sets the quiet bit).
/// - F8_E4M3 (OCP E4M3FN, no infinity, max 448, `0x7F`/`0xFF` are NaN): anything that rounds
///   beyond 448, and ±infinity, becomes NaN with the input's sign — `torch.Tensor.to` and
///   `ml_dtypes` do this. `saturatingF8: true` clamps finite and infinite overflow to ±448
///   instead (NVIDIA's `__NV_SATFINITE`); NaN stays NaN.
/// - F8_E5M2: overflow becomes infinity (saturating: ±57344).
///
/// The integer and bool types widen with `Float(_:)` (round to nearest even above 2^24).
public enum DTypeConversion {
  /// Widens the elements in `source` (raw bytes of `dtype`) into `destination`.
  ///
  /// - Precondition: `source.count == destination.count * dtype.byteSize`.
  public static func widen(
    _ source: UnsafeRawBufferPointer, from dtype: DType,
    into destination: UnsafeMutableBufferPointer<Float>
  ) {
    precondition(
      source.count == destination.count * dtype.byteSize,
      "\(source.count) bytes of \(dtype.rawValue) do not fill \(destination.count) floats")
    let count = destination.count
    guard count > 0, let input = source.baseAddress, let output = destination.baseAddress else {
      return
    }
    switch dtype {
    case .f32:
      output.withMemoryRebound(to: UInt8.self, capacity: count * 4) {
        $0.update(from: input.assumingMemoryBound(to: UInt8.self), count: count * 4)
      }
    case .f16: _widenF16(input, output, count)
    case .bf16: _widenBF16(input, output, count)
    case .f64: _widenScalar(input, output, count, Double.self) { Float($0) }
    case .f8E4M3: _widenByTable(input, output, count, _e4m3Table)
    case .f8E5M2: _widenByTable(input, output, count, _e5m2Table)
    case .i64: _widenScalar(input, output, count, Int64.self) { Float($0) }
    case .i32: _widenScalar(input, output, count, Int32.self) { Float($0) }
    case .i16: _widenScalar(input, output, count, Int16.self) { Float($0) }
    case .i8: _widenScalar(input, output, count, Int8.self) { Float($0) }
    case .u64: _widenScalar(input, output, count, UInt64.self) { Float($0) }
    case .u32: _widenScalar(input, output, count, UInt32.self) { Float($0) }
    case .u16: _widenScalar(input, output, count, UInt16.self) { Float($0) }
    case .u8: _widenScalar(input, output, count, UInt8.self) { Float($0) }
    case .bool: _widenScalar(input, output, count, UInt8.self) { $0 == 0 ? 0 : 1 }
    }
  }

  /// Narrows `source` into raw little-endian bytes of a floating-point `dtype`.
  ///
  /// - Parameter saturatingF8: clamp F8 overflow to the largest finite value instead of
  ///   producing NaN (E4M3) or infinity (E5M2).
  /// - Precondition: `dtype.isFloatingPoint` and
  ///   `destination.count == source.count * dtype.byteSize`.
  public static func narrow(
    _ source: UnsafeBufferPointer<Float>, to dtype: DType,
    into destination: UnsafeMutableRawBufferPointer, saturatingF8: Bool = false
  ) {
    precondition(dtype.isFloatingPoint, "cannot narrow Float to \(dtype.rawValue)")
    precondition(
      destination.count == source.count * dtype.byteSize,
      "\(source.count) floats do not fill \(destination.count) bytes of \(dtype.rawValue)")
    let count = source.count
    guard count > 0, let input = source.baseAddress, let output = destination.baseAddress else {
      return
    }
    switch dtype {
    case .f32:
      output.copyMemory(from: input, byteCount: count * 4)
    case .f64:
      for i in 0..<count {
        output.storeBytes(of: Double(input[i]), toByteOffset: i &* 8, as: Double.self)
      }
    case .f16: _narrowF16(input, output, count)
    case .bf16: _narrowBF16(input, output, count)
    case .f8E4M3:
      let bytes = output.assumingMemoryBound(to: UInt8.self)
      for i in 0..<count { bytes[i] = f8E4M3Bits(from: input[i], saturating: saturatingF8) }
    case .f8E5M2:
      let bytes = output.assumingMemoryBound(to: UInt8.self)
      for i in 0..<count { bytes[i] = f8E5M2Bits(from: input[i], saturating: saturatingF8) }
    default:
      preconditionFailure("cannot narrow Float to \(dtype.rawValue)")
    }
  }

  // MARK: Scalar conversions

  /// The F16 bits nearest to `value` (ties to even).
  ///
  /// Branch-free (every path is computed, then selected) so loops over it vectorise.
  @inline(__always)
  public static func float16Bits(from value: Float) -> UInt16 {
    let bits = value.bitPattern
    let sign = (bits >> 16) & 0x8000
    let magnitude = bits & 0x7FFF_FFFF
    // Normal: rebias the exponent by -112 and round the 13 dropped bits to nearest even.
    let normal = (magnitude &+ 0xC800_0FFF &+ ((magnitude >> 13) & 1)) >> 13
    // Below 2^-14: adding 0.5 makes the FPU round the subnormal mantissa into the low bits.
    let subnormal = (Float(bitPattern: magnitude) + 0.5).bitPattern &- 0x3F00_0000
    var result = magnitude < 0x3880_0000 ? subnormal : normal
    result = magnitude >= 0x4780_0000 ? 0x7C00 : result  // 65520 and up round to infinity
    result = magnitude > 0x7F80_0000 ? 0x7E00 | ((magnitude >> 13) & 0x3FF) : result
    return UInt16(truncatingIfNeeded: sign | result)
  }

  /// The exact `Float` of F16 `bits`.
  @inline(__always)
  public static func float(fromFloat16Bits bits: UInt16) -> Float {
    let h = UInt32(bits)
    let sign = (h & 0x8000) << 16
    let em = h & 0x7FFF
    let shifted = (em << 13) &+ 0x3800_0000  // rebias the exponent by +112
    let subnormal = (Float(bitPattern: shifted &+ 0x0080_0000) - 0x1p-14).bitPattern
    var magnitude = em >= 0x7C00 ? shifted &+ 0x3800_0000 : shifted
    magnitude = em < 0x0400 ? subnormal : magnitude
    return Float(bitPattern: sign | magnitude)
  }

  /// The BF16 bits nearest to `value` (ties to even); NaN stays NaN with its sign.
  @inline(__always)
  public static func bfloat16Bits(from value: Float) -> UInt16 {
    let bits = value.bitPattern
    let rounded = (bits &+ 0x7FFF &+ ((bits >> 16) & 1)) >> 16
    let quietNaN = (bits >> 16) | 0x0040
    return UInt16(truncatingIfNeeded: bits & 0x7FFF_FFFF > 0x7F80_0000 ? quietNaN : rounded)
  }

  /// The exact `Float` of BF16 `bits`.
  @inline(__always)
  public static func float(fromBFloat16Bits bits: UInt16) -> Float {
    Float(bitPattern: UInt32(bits) << 16)
  }

  /// The F8_E4M3 (E4M3FN) bits nearest to `value`; see the type's notes on overflow.
  @inline(__always)
  public static func f8E4M3Bits(from value: Float, saturating: Bool = false) -> UInt8 {
    let bits = value.bitPattern
    let sign = (bits >> 24) & 0x80
    let magnitude = bits & 0x7FFF_FFFF
    // Normal: rebias the exponent by -120 and round the 20 dropped bits to nearest even.
    let normal = (magnitude &+ 0xC407_FFFF &+ ((magnitude >> 20) & 1)) >> 20
    // Below 2^-6: adding 2^14 makes the FPU round the subnormal mantissa into the low bits.
    let subnormal = (Float(bitPattern: magnitude) + 0x1p14).bitPattern &- (141 << 23)
    let largest: UInt32 = saturating ? 0x7E : 0x7F
    var result = magnitude < 0x3C80_0000 ? subnormal : min(normal, largest)
    result = magnitude >= 0x43F0_0000 ? largest : result  // 480 and up: beyond 448's rounding range
    result = magnitude > 0x7F80_0000 ? 0x7F : result
    return UInt8(truncatingIfNeeded: sign | result)
  }

  /// The F8_E5M2 bits nearest to `value`; overflow is infinity unless `saturating`.
  @inline(__always)
  public static func f8E5M2Bits(from value: Float, saturating: Bool = false) -> UInt8 {
    let bits = value.bitPattern
    let sign = (bits >> 24) & 0x80
    let magnitude = bits & 0x7FFF_FFFF
    // Normal: rebias the exponent by -112 and round the 21 dropped bits to nearest even.
    let normal = (magnitude &+ 0xC80F_FFFF &+ ((magnitude >> 21) & 1)) >> 21
    // Below 2^-14: adding 2^7 makes the FPU round the subnormal mantissa into the low bits.
    let subnormal = (Float(bitPattern: magnitude) + Float(bitPattern: 134 << 23)).bitPattern &- (134 << 23)
    let largest: UInt32 = saturating ? 0x7B : 0x7C
    var result = magnitude < 0x3880_0000 ? subnormal : min(normal, largest)
    result = magnitude >= 0x4780_0000 ? largest : result  // 65536 and up (61440 rounds up above)
    result = magnitude > 0x7F80_0000 ? 0x7E : result
    return UInt8(truncatingIfNeeded: sign | result)
  }

  /// The exact `Float` of F8_E4M3 (E4M3FN) `bits`.
  public static func float(fromF8E4M3Bits bits: UInt8) -> Float {
    let sign: Float = bits & 0x80 == 0 ? 1 : -1
    let exponent = Int((bits >> 3) & 0xF)
    let mantissa = Float(bits & 0x7)
    if bits & 0x7F == 0x7F { return bits & 0x80 == 0 ? .nan : -.nan }
    if exponent == 0 { return sign * mantissa * 0x1p-9 }
    return sign * (1 + mantissa / 8) * Float(sign: .plus, exponent: exponent - 7, significand: 1)
  }

  /// The exact `Float` of F8_E5M2 `bits` (the top byte of an F16).
  public static func float(fromF8E5M2Bits bits: UInt8) -> Float {
    float(fromFloat16Bits: UInt16(bits) << 8)
  }
}

// MARK: Kernels

private let _e4m3Table: [Float] = (0...255).map { DTypeConversion.float(fromF8E4M3Bits: UInt8($0)) }
private let _e5m2Table: [Float] = (0...255).map { DTypeConversion.float(fromF8E5M2Bits: UInt8($0)) }

@inline(__always)
private func _widenScalar<T: FixedWidthInteger>(
  _ input: UnsafeRawPointer, _ output: UnsafeMutablePointer<Float>, _ count: Int, _: T.Type,
  _ convert: (T) -> Float
) {
  for i in 0..<count {
    output[i] = convert(
      T(littleEndian: input.loadUnaligned(fromByteOffset: i &* MemoryLayout<T>.size, as: T.self)))
  }
}

@inline(__always)
private func _widenScalar(
  _ input: UnsafeRawPointer, _ output: UnsafeMutablePointer<Float>, _ count: Int,
  _: Double.Type, _ convert: (Double) -> Float
) {
  for i in 0..<count {
    output[i] = convert(input.loadUnaligned(fromByteOffset: i &* 8, as: Double.self))
  }
}

private func _widenByTable(
  _ input: UnsafeRawPointer, _ output: UnsafeMutablePointer<Float>, _ count: Int,
  _ table: [Float]
) {
  table.withUnsafeBufferPointer { table in
    let bytes = input.assumingMemoryBound(to: UInt8.self)
    for i in 0..<count { output[i] = table[Int(bytes[i])] }
  }
}

// Plain loops over branch-free conversions: LLVM vectorises these (about 15-30 GB/s moved
// on x86-64), while SIMD8 with `replacing(with:where:)` stays scalar-slow.

private func _widenBF16(
  _ input: UnsafeRawPointer, _ output: UnsafeMutablePointer<Float>, _ count: Int
) {
  if Int(bitPattern: input) % 2 == 0 {
    // The same widening, eight at a time where the CPU has AVX2 (exact either way).
    qk_half_to_float(input.assumingMemoryBound(to: UInt16.self), output, count, 1)
    return
  }
  for i in 0..<count {
    output[i] = DTypeConversion.float(
      fromBFloat16Bits: input.loadUnaligned(fromByteOffset: i &* 2, as: UInt16.self))
  }
}

private func _widenF16(
  _ input: UnsafeRawPointer, _ output: UnsafeMutablePointer<Float>, _ count: Int
) {
  if Int(bitPattern: input) % 2 == 0 {
    // The same widening, eight at a time with F16C where the CPU has it (exact, NaNs kept).
    qk_half_to_float(input.assumingMemoryBound(to: UInt16.self), output, count, 0)
    return
  }
  for i in 0..<count {
    output[i] = DTypeConversion.float(
      fromFloat16Bits: input.loadUnaligned(fromByteOffset: i &* 2, as: UInt16.self))
  }
}

private func _narrowBF16(
  _ input: UnsafePointer<Float>, _ output: UnsafeMutableRawPointer, _ count: Int
) {
  for i in 0..<count {
    output.storeBytes(
      of: DTypeConversion.bfloat16Bits(from: input[i]), toByteOffset: i &* 2, as: UInt16.self)
  }
}

private func _narrowF16(
  _ input: UnsafePointer<Float>, _ output: UnsafeMutableRawPointer, _ count: Int
) {
  for i in 0..<count {
    output.storeBytes(
      of: DTypeConversion.float16Bits(from: input[i]), toByteOffset: i &* 2, as: UInt16.self)
  }
}
