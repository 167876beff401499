import Foundation
import Testing

@testable import QCompute

#if !DEBUG
  /// Release-only timings for the quantizers on a 4096 x 4096 matrix; run with
  /// `swift test -c release --filter QuantizeThroughputTests`.
  @Suite("Quantizer throughput", .serialized)
  struct QuantizeThroughputTests {
    static let rows = 4096
    static let columns = 4096
    static let weights: [Float] = (0..<(rows * columns)).map { Float(($0 &* 2_654_435_761) % 1999) / 1000 - 1 }

    static func measure(_ label: String, _ body: () throws -> Void) rethrows {
      let start = ContinuousClock.now
      try body()
      let seconds = (ContinuousClock.now - start) / .seconds(1)
      let gigabytes = Double(rows * columns * 4) / 1e9
      print("\(label): \(String(format: "%.3f", seconds)) s, \(String(format: "%.2f", gigabytes / seconds)) GB/s of f32")
    }

    @Test func affine() throws {
      try Self.weights.withUnsafeBufferPointer { w in
        try Self.measure("affine b4 g64") {
          let m = try AffineQuantizer.quantize(w, rows: Self.rows, columns: Self.columns, bits: 4, groupSize: 64)
          #expect(m.codes.count == w.count)
        }
      }
    }

    @Test func packing() throws {
      let codes = [UInt8](repeating: 5, count: Self.rows * Self.columns)
      try codes.withUnsafeBufferPointer { c in
        try Self.measure("pack words b4") {
          let words = try BitPacking.packWords(c, rows: Self.rows, columns: Self.columns, bits: 4)
          #expect(words.count == c.count / 8)
        }
      }
    }

    @Test func bilevel() throws {
      try Self.weights.withUnsafeBufferPointer { w in
        try Self.measure("bilevel w4g32g128") {
          let m = try BilevelQuantizer.quantize(w, rows: Self.rows, columns: Self.columns, configuration: .w4g32g128)
          #expect(m.codes.count == w.count)
        }
      }
    }

    @Test func ggufQ4K() throws {
      try Self.weights.withUnsafeBufferPointer { w in
        try Self.measure("gguf q4_K") {
          let bytes = try GGUFBlocks.encode(w, type: .q4_K)
          #expect(bytes.count == w.count / 256 * 144)
        }
      }
    }

    @Test func clipSearchAndHQQ() throws {
      try Self.weights.withUnsafeBufferPointer { w in
        let slice = UnsafeBufferPointer(rebasing: w[0..<(512 * Self.columns)])
        func squaredError(_ m: QuantizedMatrix) -> Double {
          zip(m.dequantize(), slice).reduce(0) { $0 + Double($1.0 - $1.1) * Double($1.0 - $1.1) }
        }
        var clipped: QuantizedMatrix?
        try Self.measure("clip search b4 g32 (512 rows)") {
          clipped = try ClipSearchQuantizer.quantize(slice, rows: 512, columns: Self.columns, bits: 4, groupSize: 32)
        }
        var hqq: QuantizedMatrix?
        try Self.measure("hqq b4 g64 (512 rows)") {
          hqq = try HQQQuantizer.quantize(slice, rows: 512, columns: Self.columns, bits: 4, groupSize: 64)
        }
        // The clip search tries the unclipped range among its candidates, so it is never worse
        // than round-to-nearest on the same grid; HQQ minimises another norm, so it is held
        // only to a finite error well below the weights' own energy.
        let clip = try #require(clipped)
        let halfQuadratic = try #require(hqq)
        let rtn = try AffineQuantizer.quantize(slice, rows: 512, columns: Self.columns, bits: 4, groupSize: 32)
        let energy = slice.reduce(0) { $0 + Double($1) * Double($1) }
        #expect(clip.codes.count == slice.count && halfQuadratic.codes.count == slice.count)
        #expect(squaredError(clip) <= squaredError(rtn))
        let hqqError = squaredError(halfQuadratic)
        #expect(hqqError.isFinite && hqqError < 0.05 * energy)
      }
    }
  }
#endif
