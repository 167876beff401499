import Testing
@testable import QFormats

@Suite struct DTypeTests {
  @Test func spellingRoundTrips() {
    for dtype in DType.allCases {
      #expect(DType(rawValue: dtype.rawValue) == dtype)
    }
    #expect(DType(rawValue: "F4") == nil)
  }

  @Test func sizes() {
    #expect(DType.bf16.byteSize == 2)
    #expect(DType.f8E4M3.byteSize == 1)
    #expect(DType.u64.byteSize == 8)
    #expect(TensorInfo(name: "x", dtype: .f16, shape: [3, 0]).byteCount == 0)
    #expect(TensorInfo(name: "x", dtype: .f32, shape: []).byteCount == 4)
  }
}
