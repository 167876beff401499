import Foundation
import Testing

@testable import QCompute
@testable import QFormats

/// Bit-at-a-time CRC-32C straight from the definition, the reference the sliced tables must match.
private func bitwiseCRC32C(_ bytes: [UInt8]) -> UInt32 {
  var crc: UInt32 = 0xFFFF_FFFF
  for byte in bytes {
    crc ^= UInt32(byte)
    for _ in 0..<8 { crc = (crc & 1) != 0 ? (crc >> 1) ^ 0x82F6_3B78 : crc >> 1 }
  }
  return ~crc
}

private func noise(_ count: Int, seed: UInt64) -> [UInt8] {
  var state = seed
  return (0..<count).map { _ in
    state = state &* 6364136223846793005 &+ 1442695040888963407
    return UInt8(truncatingIfNeeded: state >> 56)
  }
}

@Suite struct PackChecksumTests {
  /// Published vectors: the CRC catalogue's check value and RFC 3720 appendix B.4.
  @Test(arguments: [
    (Array("123456789".utf8), UInt32(0xE306_9283)),
    ([UInt8](repeating: 0, count: 32), UInt32(0x8A91_36AA)),
    ([UInt8](repeating: 0xFF, count: 32), UInt32(0x62A8_AB43)),
    ((0..<32).map { UInt8($0) }, UInt32(0x46DD_794E)),
    ((0..<32).map { UInt8(31 - $0) }, UInt32(0x113F_DB5C)),
  ])
  func matchesPublishedVectors(bytes: [UInt8], expected: UInt32) {
    #expect(CRC32C.checksum(bytes) == expected)
  }

  @Test(arguments: [0, 1, 7, 8, 9, 15, 16, 63, 64, 65, 1000])
  func slicedEqualsBitwiseAndContinues(count: Int) {
    let bytes = noise(count, seed: UInt64(count) + 3)
    #expect(CRC32C.checksum(bytes) == bitwiseCRC32C(bytes))
    for split in Set([0, count / 3, count]) {
      let head = CRC32C.checksum(Array(bytes[..<split]))
      #expect(CRC32C.checksum(Array(bytes[split...]), continuing: head) == bitwiseCRC32C(bytes))
      // The table, which CPUs without the crc32 instruction use, and the two mixed.
      let tableHead = Array(bytes[..<split]).withUnsafeBytes { CRC32C.tableChecksum($0) }
      #expect(tableHead == head)
      #expect(Array(bytes[split...]).withUnsafeBytes { CRC32C.tableChecksum($0, continuing: tableHead) } == bitwiseCRC32C(bytes))
    }
  }

  @Test func formatsWithFixedWidth() {
    #expect(CRC32C.formatted(0x1F) == "crc32c:0x0000001f")
    #expect(CRC32C.formatted(0xE306_9283) == "crc32c:0xe3069283")
    #expect(CRC32C.placeholder.count == CRC32C.formatted(.max).count)
  }

  @Test(arguments: [0, 1, 65, 100_000])
  func zstdFramesRoundTrip(count: Int) throws {
    let bytes = noise(count, seed: 9).map { $0 & 0x33 }
    let frame = try bytes.withUnsafeBytes { try PackCompression.compress($0, location: "m", tensor: "w") }
    let back = try frame.withUnsafeBytes { try PackCompression.decompress($0, expectedCount: count, location: "m", tensor: "w") }
    #expect(back == bytes)
    #expect(throws: PackError.self) {
      try frame.withUnsafeBytes { try PackCompression.decompress($0, expectedCount: count + 1, location: "m", tensor: "w") }
    }
  }

  @Test func garbageIsNotAFrame() {
    let garbage: [UInt8] = [1, 2, 3, 4, 5, 6, 7, 8, 9]
    #expect(throws: PackError.self) {
      try garbage.withUnsafeBytes { try PackCompression.decompress($0, expectedCount: 4, location: "m", tensor: "w") }
    }
  }

  /// A pack written with a compressed `.qweight` and checksums, as `Formats/qpack.md` defines them.
  func writePack(flipping flip: Int? = nil) throws -> (path: String, packed: PackedTensor) {
    let info = TensorInfo(name: "layer.weight", dtype: .f32, shape: [8, 64])
    let values = (0..<info.elementCount).map { Float(($0 * 37) % 101) / 50 - 1 }
    let packed = try values.withUnsafeBufferPointer {
      try PackEncoder.pack($0, info: info, spec: PackSpec(bits: 4, groupSize: 32), location: "test")
    }
    var description = packed.description
    description.compression = "zstd"
    var stored: [(TensorInfo, [UInt8])] = []
    var crc: UInt32 = 0
    for (companion, bytes) in packed.companions {
      var entry = (companion, bytes)
      if companion.name.hasSuffix(".qweight") {
        let frame = try bytes.withUnsafeBytes { try PackCompression.compress($0, location: "t", tensor: info.name) }
        entry = (TensorInfo(name: companion.name, dtype: .u8, shape: [frame.count]), frame)
      }
      crc = CRC32C.checksum(entry.1, continuing: crc)
      stored.append(entry)
    }
    description.checksum = CRC32C.formatted(crc)
    let kept = TensorInfo(name: "norm.weight", dtype: .f16, shape: [3])
    let keptBytes: [UInt8] = [0, 60, 0, 64, 0, 188]
    let path = FileManager.default.temporaryDirectory.appendingPathComponent("zpack-\(UUID().uuidString).safetensors").path
    let writer = try SafetensorsWriter(
      path: path, plan: [kept] + stored.map(\.0),
      metadata: [
        PackDescription.versionKey: "1", PackDescription.keyPrefix + info.name: description.jsonString(),
        PackDescription.checksumKeyPrefix + kept.name: CRC32C.formatted(bitwiseCRC32C(keptBytes)),
      ],
      order: .asGiven)
    try writer.append(name: kept.name, bytes: keptBytes)
    for (index, (companion, bytes)) in stored.enumerated() {
      var bytes = bytes
      if let flip, index == stored.count - 2 { bytes[flip % bytes.count] ^= 0x10 }
      try writer.append(name: companion.name, bytes: bytes)
    }
    try writer.finish()
    return (path, packed)
  }

  @Test func compressedPackDequantizesExactlyAndVerifies() throws {
    let (path, packed) = try writePack()
    defer { try? FileManager.default.removeItem(atPath: path) }
    let pack = try PackedCheckpoint(wrapping: try SafetensorsFile(path: path))
    #expect(try pack.floats(of: "layer.weight").map(\.bitPattern) == packed.matrix.dequantize().map(\.bitPattern))
    let (checked, mismatches) = try pack.verifyChecksums()
    #expect(checked == 2)
    #expect(mismatches.isEmpty)
    #expect(pack.storedByteCounts["layer.weight"] ?? 0 < packed.companions.reduce(0) { $0 + $1.bytes.count })
  }

  @Test func flippedByteIsNamed() throws {
    let (path, _) = try writePack(flipping: 5)
    defer { try? FileManager.default.removeItem(atPath: path) }
    let pack = try PackedCheckpoint(wrapping: try SafetensorsFile(path: path))
    let (checked, mismatches) = try pack.verifyChecksums()
    #expect(checked == 2)
    #expect(mismatches.count == 1)
    #expect(mismatches.first?.description.contains("'layer.weight'") == true)
  }
}

@Suite struct PackFiniteScanTests {
  @Test(arguments: [0, 1, 7, 8, 15, 16, 17, 63, 64, 65])
  func findsTheFirstNonFiniteAtEveryPosition(count: Int) {
    let specials: [Float] = [.nan, .infinity, -.infinity, -.nan]
    var values = (0..<count).map { Float($0) - 3.5 }
    values.withUnsafeBufferPointer { #expect(PackEncoder.firstNonFinite($0, shape: [1, count]) == nil) }
    for position in 0..<count {
      let special = specials[position % specials.count]
      let saved = values[position]
      values[position] = special
      values.withUnsafeBufferPointer { buffer in
        #expect(PackEncoder.firstNonFinite(buffer, shape: [1, count])?.index == [0, position])
      }
      values[position] = saved
    }
    // The largest finite values are finite.
    let extremes = [Float](repeating: .greatestFiniteMagnitude, count: count) + [-.greatestFiniteMagnitude]
    extremes.withUnsafeBufferPointer { #expect(PackEncoder.firstNonFinite($0, shape: [1, count + 1]) == nil) }
  }
}
