import Foundation
import Testing

@testable import QCompute
@testable import QFormats

/// Deterministic weights in [-1, 1) with a few larger outliers.
private func weights(count: Int, seed: UInt64) -> [Float] {
  var state = seed
  return (0..<count).map { index in
    state = state &* 6364136223846793005 &+ 1442695040888963407
    let unit = Float(state >> 40) / Float(1 << 24) * 2 - 1
    return index % 37 == 0 ? unit * 4 : unit
  }
}

struct PackCase: CustomTestStringConvertible, Sendable {
  var spec: PackSpec
  var shape: [Int]
  var testDescription: String { "\(spec) \(shape)" }
}

@Suite struct PackRoundTripTests {
  static let cases: [PackCase] = [
    PackCase(spec: PackSpec(bits: 4, groupSize: 32, grid: .affine, method: .rtn), shape: [8, 64]),
    PackCase(spec: PackSpec(bits: 3, groupSize: 16, grid: .affine, method: .rtn, scaleDType: .bf16), shape: [5, 48]),
    PackCase(spec: PackSpec(bits: 2, groupSize: .perChannel, grid: .affine, method: .rtn, scaleDType: .f32), shape: [3, 7]),
    PackCase(spec: PackSpec(bits: 8, groupSize: 64, grid: .affine, method: .clip), shape: [4, 2, 64]),
    PackCase(spec: PackSpec(bits: 4, groupSize: 16, grid: .affine, method: .hqq), shape: [6, 32]),
    PackCase(spec: PackSpec(bits: 4, groupSize: 32, grid: .symmetric, method: .rtn), shape: [4, 64]),
    PackCase(spec: .speedQEmbedding(), shape: [16, 32]),
    PackCase(spec: .speedQ(bits: 2), shape: [16, 32]),
    PackCase(spec: .speedQ(bits: 4), shape: [32, 128]),
  ]

  @Test(arguments: cases)
  func packFileDequantizesToTheStoredMatrix(_ testCase: PackCase) throws {
    let info = TensorInfo(name: "layer.weight", dtype: .f32, shape: testCase.shape)
    let values = weights(count: info.elementCount, seed: UInt64(info.elementCount))
    let packed = try values.withUnsafeBufferPointer {
      try PackEncoder.pack($0, info: info, spec: testCase.spec, location: "test")
    }
    // Planning from the spec alone gives exactly the companions the encoder produced.
    let planned = try PackEncoder.companions(of: info, spec: testCase.spec, location: "test").companions
    #expect(planned == packed.companions.map(\.info))

    let kept = TensorInfo(name: "norm.weight", dtype: .f16, shape: [3])
    let keptBytes: [UInt8] = [0, 60, 0, 64, 0, 188]
    let path = FileManager.default.temporaryDirectory.appendingPathComponent("pack-\(UUID().uuidString).safetensors").path
    defer { try? FileManager.default.removeItem(atPath: path) }
    let entry = packed.metadataEntry
    let writer = try SafetensorsWriter(
      path: path, plan: [kept] + planned, metadata: [PackDescription.versionKey: "1", entry.key: entry.value],
      order: .asGiven)
    try writer.append(name: kept.name, bytes: keptBytes)
    for companion in packed.companions { try writer.append(name: companion.info.name, bytes: companion.bytes) }
    try writer.finish()

    let pack = try PackedCheckpoint(wrapping: try SafetensorsFile(path: path))
    #expect(pack.tensors == [kept, info])
    #expect(try pack.withRawBytes(of: kept.name) { [UInt8]($0) } == keptBytes)
    let restored = try pack.floats(of: info.name)
    let expected = packed.matrix.dequantize()
    #expect(restored.map(\.bitPattern) == expected.map(\.bitPattern))
    // And the reconstruction is close to the input: every element within one step of its group.
    let maxScale = packed.matrix.scales.map(abs).max() ?? 0
    for (original, value) in zip(values, restored) {
      #expect(abs(original - value) <= maxScale * 1.01 + 1e-6)
    }
    #expect(pack.packDescriptions[info.name]?.bits == testCase.spec.bits)
  }

  @Test func rejectsUnknownVersion() throws {
    let bytes = try SafetensorsWriter.header(plan: [], metadata: [PackDescription.versionKey: "2"]).bytes
    let file = try SafetensorsFile(bytes: bytes, location: "v2.safetensors")
    #expect(throws: PackError.unsupportedVersion(location: "v2.safetensors", version: "2")) {
      try PackedCheckpoint(wrapping: file)
    }
  }

  @Test func namesTheFirstNonFiniteElement() throws {
    var values = [Float](repeating: 0.5, count: 2 * 32)
    values[37] = .nan
    let info = TensorInfo(name: "w", dtype: .f32, shape: [2, 32])
    #expect(throws: PackError.self) {
      try values.withUnsafeBufferPointer { try PackEncoder.pack($0, info: info, spec: PackSpec(bits: 4, groupSize: 32), location: "m") }
    }
    let found = values.withUnsafeBufferPointer { PackEncoder.firstNonFinite($0, shape: [2, 32]) }
    #expect(found?.index == [1, 5])
  }

  @Test func refusesGroupsThatDoNotDivide() {
    let info = TensorInfo(name: "w", dtype: .f16, shape: [4, 48])
    #expect(throws: PackError.self) {
      try PackEncoder.companions(of: info, spec: PackSpec(bits: 4, groupSize: 32), location: "m")
    }
  }
}
