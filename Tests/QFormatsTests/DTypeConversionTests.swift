import Foundation
import Testing
@testable import QFormats

/// Checks conversions against bits produced by numpy and ml_dtypes (see the fixture script).
@Suite struct DTypeConversionTests {
  /// Both are the same NaN-ness and sign, or bit-identical.
  static func sameFloat(_ a: UInt32, _ b: UInt32) -> Bool {
    let x = Float(bitPattern: a), y = Float(bitPattern: b)
    if x.isNaN || y.isNaN { return x.isNaN && y.isNaN && x.sign == y.sign }
    return a == b
  }

  /// Widens `bytes` at `offset` bytes into an allocation: by default a deliberately misaligned
  /// address; an even offset takes the 16-bit types' vector path.
  static func widen(_ bytes: [UInt8], _ dtype: DType, offset: Int = 1) -> [UInt32] {
    let count = bytes.count / dtype.byteSize
    var padded = [UInt8](repeating: 0xAB, count: bytes.count + offset)
    padded.replaceSubrange(offset..., with: bytes)
    var out = [Float](repeating: .nan, count: count)
    padded.withUnsafeBytes { raw in
      out.withUnsafeMutableBufferPointer {
        DTypeConversion.widen(UnsafeRawBufferPointer(rebasing: raw[offset...]), from: dtype, into: $0)
      }
    }
    return out.map(\.bitPattern)
  }

  static func narrow(_ values: [Float], _ dtype: DType, saturating: Bool = false) -> [UInt8] {
    var out = [UInt8](repeating: 0xCD, count: values.count * dtype.byteSize)
    values.withUnsafeBufferPointer { source in
      out.withUnsafeMutableBytes {
        DTypeConversion.narrow(source, to: dtype, into: $0, saturatingF8: saturating)
      }
    }
    return out
  }

  static func allSixteenBitPatterns() -> [UInt8] {
    (0..<65536).flatMap { [UInt8($0 & 0xFF), UInt8($0 >> 8)] }
  }

  /// At an odd address (the scalar path) and an even one (the vector path, NaNs included).
  @Test(arguments: [1, 2]) func widensEveryF16Pattern(offset: Int) throws {
    let expected = try SafetensorsFixtures.words("safetensors", "conversion", "f16_widened.u32")
    #expect(expected.count == 65536)
    let got = Self.widen(Self.allSixteenBitPatterns(), .f16, offset: offset)
    let mismatches = (0..<65536).filter { got[$0] != expected[$0] }
    #expect(mismatches.isEmpty, "first mismatches: \(mismatches.prefix(5))")
    for bits in [0, 1, 0x3C00, 0x7BFF, 0x7C00, 0x7E01, 0x8001, 0xFC00] as [UInt16] {
      #expect(DTypeConversion.float(fromFloat16Bits: bits).bitPattern == expected[Int(bits)])
    }
  }

  @Test(arguments: [1, 2]) func widensEveryBF16Pattern(offset: Int) throws {
    let expected = try SafetensorsFixtures.words("safetensors", "conversion", "bf16_widened.u32")
    let got = Self.widen(Self.allSixteenBitPatterns(), .bf16, offset: offset)
    let mismatches = (0..<65536).filter { !Self.sameFloat(got[$0], expected[$0]) }
    #expect(mismatches.isEmpty, "first mismatches: \(mismatches.prefix(5))")
  }

  @Test(arguments: [DType.f8E4M3, .f8E5M2])
  func widensEveryF8Pattern(dtype: DType) throws {
    let name = dtype == .f8E4M3 ? "f8_e4m3_widened.u32" : "f8_e5m2_widened.u32"
    let expected = try SafetensorsFixtures.words("safetensors", "conversion", name)
    let got = Self.widen((0..<256).map { UInt8($0) }, dtype)
    for i in 0..<256 {
      #expect(Self.sameFloat(got[i], expected[i]), "\(dtype) bits \(i)")
    }
  }

  @Test(arguments: ["I64", "I32", "I16", "I8", "U64", "U32", "U16", "U8", "F64", "BOOL"])
  func widensOtherTypes(name: String) throws {
    let table = try #require(
      try SafetensorsFixtures.json("safetensors", "conversion", "widened_other.json")
        as? [String: [String: Any]])
    let entry = try #require(table[name])
    let dtype = try #require(DType(rawValue: name))
    let bytes = [UInt8](hex: try #require(entry["hex"] as? String))
    let expected = try #require(entry["float32"] as? [Int]).map { UInt32($0) }
    #expect(Self.widen(bytes, dtype) == expected)
  }

  struct Narrowed {
    let input: [Float]
    let expected: [DType: [UInt32]]
    init() throws {
      let json = try #require(
        try SafetensorsFixtures.json("safetensors", "conversion", "narrowed.json") as? [String: Any])
      input = try #require(json["input"] as? [Int]).map { Float(bitPattern: UInt32($0)) }
      var expected: [DType: [UInt32]] = [:]
      for dtype in [DType.f16, .bf16, .f8E4M3, .f8E5M2] {
        expected[dtype] = try #require(json[dtype.rawValue] as? [Int]).map { UInt32($0) }
      }
      self.expected = expected
    }
  }

  static func decode(_ bytes: [UInt8], _ dtype: DType) -> [UInt32] {
    dtype.byteSize == 1
      ? bytes.map { UInt32($0) }
      : stride(from: 0, to: bytes.count, by: 2).map { UInt32(bytes[$0]) | UInt32(bytes[$0 + 1]) << 8 }
  }

  /// The widened value of narrow `bits`, to compare NaNs by sign rather than payload.
  static func widened(_ bits: UInt32, _ dtype: DType) -> UInt32 {
    switch dtype {
    case .f16: DTypeConversion.float(fromFloat16Bits: UInt16(bits)).bitPattern
    case .bf16: DTypeConversion.float(fromBFloat16Bits: UInt16(bits)).bitPattern
    case .f8E4M3: DTypeConversion.float(fromF8E4M3Bits: UInt8(bits)).bitPattern
    default: DTypeConversion.float(fromF8E5M2Bits: UInt8(bits)).bitPattern
    }
  }

  @Test(arguments: [DType.f16, .bf16, .f8E4M3, .f8E5M2])
  func narrowsTrickyFloats(dtype: DType) throws {
    let fixture = try Narrowed()
    let expected = try #require(fixture.expected[dtype])
    let got = Self.decode(Self.narrow(fixture.input, dtype), dtype)
    #expect(got.count == expected.count)
    var failures: [String] = []
    for i in 0..<expected.count {
      let same =
        fixture.input[i].isNaN
        ? Self.sameFloat(Self.widened(got[i], dtype), Self.widened(expected[i], dtype))
        : got[i] == expected[i]
      if !same {
        failures.append("\(fixture.input[i]) (\(String(fixture.input[i].bitPattern, radix: 16))): got \(got[i]) expected \(expected[i])")
      }
    }
    #expect(failures.isEmpty, "\(failures.count) wrong, e.g. \(failures.prefix(5))")
  }

  @Test(arguments: [DType.f8E4M3, .f8E5M2])
  func saturatingF8ClampsOverflow(dtype: DType) throws {
    let fixture = try Narrowed()
    let expected = try #require(fixture.expected[dtype])
    let got = Self.narrow(fixture.input, dtype, saturating: true)
    let largest: UInt8 = dtype == .f8E4M3 ? 0x7E : 0x7B
    for i in 0..<expected.count {
      let reference = Float(bitPattern: Self.widened(expected[i], dtype))
      let overflowed = !fixture.input[i].isNaN && !reference.isFinite
      let want = overflowed ? (UInt8(expected[i]) & 0x80) | largest : UInt8(expected[i])
      if fixture.input[i].isNaN {
        #expect(Float(bitPattern: Self.widened(UInt32(got[i]), dtype)).isNaN)
      } else {
        #expect(got[i] == want, "\(fixture.input[i])")
      }
    }
  }

  /// The SIMD body and the scalar tail must agree at every boundary size.
  @Test(arguments: [0, 1, 7, 8, 9, 15, 16, 17, 63, 64, 65])
  func vectorAndScalarPathsAgree(count: Int) throws {
    let fixture = try Narrowed()
    let input = Array(fixture.input.suffix(count))
    for dtype in [DType.f16, .bf16, .f8E4M3, .f8E5M2, .f64, .f32] {
      let bytes = Self.narrow(input, dtype)
      let oneByOne = input.flatMap { Self.narrow([$0], dtype) }
      #expect(bytes == oneByOne, "\(dtype) narrowing, count \(count)")
      let wide = Self.widen(bytes, dtype)
      let wideOneByOne = stride(from: 0, to: bytes.count, by: dtype.byteSize).flatMap {
        Self.widen(Array(bytes[$0..<$0 + dtype.byteSize]), dtype)
      }
      #expect(wide == wideOneByOne, "\(dtype) widening, count \(count)")
    }
  }

  @Test func f32AndF64RoundTripExactly() {
    let values: [Float] = [0, -0.0, 1, .pi, -.infinity, .leastNonzeroMagnitude, .greatestFiniteMagnitude]
    for dtype in [DType.f32, .f64] {
      let back = Self.widen(Self.narrow(values, dtype), dtype)
      #expect(back == values.map(\.bitPattern))
    }
  }

  #if !DEBUG
  /// Seconds for the faster of two runs (the first one also pays for page faults).
  static func timed(_ body: () -> Void) -> Double {
    (0..<2).map { _ in
      let start = DispatchTime.now().uptimeNanoseconds
      body()
      return Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
    }.min() ?? 0
  }

  @Test func halfPrecisionConversionRunsNearMemorySpeed() {
    let count = 1 << 25
    let bytes = (0..<count * 2).map { UInt8(truncatingIfNeeded: $0 &* 37) }
    var floats = [Float](repeating: 0, count: count)
    var narrowed = [UInt8](repeating: 0, count: count * 2)
    for dtype in [DType.f16, .bf16] {
      let widen = Self.timed {
        bytes.withUnsafeBytes { raw in
          floats.withUnsafeMutableBufferPointer { DTypeConversion.widen(raw, from: dtype, into: $0) }
        }
      }
      let narrow = Self.timed {
        floats.withUnsafeBufferPointer { source in
          narrowed.withUnsafeMutableBytes { DTypeConversion.narrow(source, to: dtype, into: $0) }
        }
      }
      let gigabytes = Double(count * 6) / 1e9
      print("\(dtype.rawValue): widen \(gigabytes / widen) GB/s, narrow \(gigabytes / narrow) GB/s (bytes in + out)")
      #expect(gigabytes / widen > 2)
      #expect(gigabytes / narrow > 2)
    }
  }
  #endif
}
