import Foundation
import Testing

@testable import QCompute
import QFormats

#if !DEBUG
  /// Release-only timing of the CRC-32C every pack reader now runs on a tensor's bytes before
  /// decoding them, on a real-size tensor (a 4096 x 11008 F16 projection, 90 MB), beside the
  /// F16 to F32 widening every reader does anyway; run with
  /// `swift test -c release --filter PackChecksumThroughputTests`.
  @Suite(.serialized) struct PackChecksumThroughputTests {
    static let bytes: [UInt8] = (0..<(4096 * 11008 * 2)).map { UInt8(truncatingIfNeeded: ($0 &* 2_654_435_761) >> 13) }

    @Test func crc32cOnARealSizeTensor() {
      var best = Double.infinity
      var crc: UInt32 = 0
      for _ in 0..<5 {
        let start = ContinuousClock.now
        crc = Self.bytes.withUnsafeBytes { CRC32C.checksum($0) }
        best = min(best, (ContinuousClock.now - start) / .seconds(1))
      }
      var table = Double.infinity
      for _ in 0..<3 {
        let start = ContinuousClock.now
        #expect(Self.bytes.withUnsafeBytes { CRC32C.tableChecksum($0) } == crc)
        table = min(table, (ContinuousClock.now - start) / .seconds(1))
      }
      var floats = [Float](repeating: 0, count: Self.bytes.count / 2)
      let start = ContinuousClock.now
      Self.bytes.withUnsafeBytes { raw in floats.withUnsafeMutableBufferPointer { DTypeConversion.widen(raw, from: .f16, into: $0) } }
      let widen = (ContinuousClock.now - start) / .seconds(1)
      let gigabytes = Double(Self.bytes.count) / 1e9
      print(
        "crc32c \(CRC32C.formatted(crc)) (hardware \(CRC32C.hardware)): \(String(format: "%.3f", best)) s, "
          + "\(String(format: "%.2f", gigabytes / best)) GB/s; table: \(String(format: "%.2f", gigabytes / table)) GB/s; "
          + "f16 -> f32 widening: \(String(format: "%.3f", widen)) s (\(floats.count) floats)")
      #expect(best > 0)
    }
  }
#endif
