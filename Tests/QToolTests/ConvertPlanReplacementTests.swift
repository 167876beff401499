import Foundation
import QCompute
import QFormats
import Testing

@testable import QToolSupport

/// `ConvertPlan.replace`: a tensor given new values is written exactly as if the checkpoint had
/// stored those values, kept or quantized as the plan says.
@Suite struct ConvertPlanReplacementTests {
  let tensors = [
    TensorInfo(name: "layers.0.mlp.weight", dtype: .f16, shape: [8, 64]),
    TensorInfo(name: "proj.weight", dtype: .bf16, shape: [7, 9]),
    TensorInfo(name: "proj.bias", dtype: .f32, shape: [7]),
  ]

  func values(_ count: Int, seed: UInt64) -> [Float] {
    var generator = SplitMixGenerator(state: seed)
    return (0..<count).map { _ in generator.nextGaussian() }
  }

  /// Writes a checkpoint whose tensors hold `values` (narrowed to their dtypes).
  func writeCheckpoint(_ values: [String: [Float]], to path: String) throws {
    let writer = try SafetensorsWriter(path: path, plan: tensors)
    for info in writer.order {
      try values[info.name, default: []].withUnsafeBufferPointer { try writer.append(name: info.name, converting: $0) }
    }
    try writer.finish()
  }

  func plan(for source: any TensorSource) throws -> ConvertPlan {
    try ConvertPlan(
      tensors: source.tensors, architecture: .recognise(config: nil, tensors: source.tensors),
      settings: ConvertSettings(bits: 4, groupSize: .elements(32)), rules: [try ConvertRule(parsing: "proj=keep")],
      location: source.location)
  }

  func pack(_ plan: ConvertPlan, _ source: any TensorSource, into directory: URL) throws -> Data {
    try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    _ = try ConvertJob.writePack(plan: plan, source: source, into: directory.path, options: .init(), quiet: true)
    return try Data(contentsOf: directory.appending(path: "model.safetensors"))
  }

  @Test func replacedTensorsPackLikeStoredOnes() throws {
    let work = FileManager.default.temporaryDirectory.appending(path: "plan-replacement-\(UUID().uuidString)")
    defer { try? FileManager.default.removeItem(at: work) }
    try FileManager.default.createDirectory(at: work, withIntermediateDirectories: true)
    let original = Dictionary(uniqueKeysWithValues: tensors.enumerated().map {
      ($1.name, values($1.elementCount, seed: UInt64($0 + 1)))
    })
    var replaced = original
    for info in tensors { replaced[info.name] = values(info.elementCount, seed: UInt64(100 + info.elementCount)) }
    try writeCheckpoint(original, to: work.appending(path: "original.safetensors").path)
    try writeCheckpoint(replaced, to: work.appending(path: "replaced.safetensors").path)
    let originalSource = try SafetensorsFile(path: work.appending(path: "original.safetensors").path)
    let replacedSource = try SafetensorsFile(path: work.appending(path: "replaced.safetensors").path)

    var withReplacements = try plan(for: originalSource)
    for info in tensors {
      try withReplacements.replace(info.name, with: replaced[info.name, default: []], reason: "test")
    }
    #expect(withReplacements.entries.allSatisfy { $0.reason.hasSuffix(", test") })
    let expected = try pack(try plan(for: replacedSource), replacedSource, into: work.appending(path: "expected"))
    let found = try pack(withReplacements, originalSource, into: work.appending(path: "found"))
    #expect(found == expected)
    // Without replacements the original values are packed, which differ.
    let unchanged = try pack(try plan(for: originalSource), originalSource, into: work.appending(path: "unchanged"))
    #expect(unchanged != expected)
  }

  @Test func replacementDropsEarlierCodes() throws {
    let info = TensorInfo(name: "layers.0.mlp.weight", dtype: .f16, shape: [1, 32])
    var plan = try ConvertPlan(
      tensors: [info], architecture: .recognise(config: nil, tensors: [info]),
      settings: ConvertSettings(bits: 4, groupSize: .elements(32)), rules: [], location: "test")
    plan.entries[0].precomputed = try values(32, seed: 3).withUnsafeBufferPointer {
      try CalibratedGrid.affine(bits: 4, groupSize: .elements(32)).roundToNearest($0, rows: 1, columns: 32)
    }
    try plan.replace(info.name, with: values(32, seed: 4), reason: "refit")
    #expect(plan.entries[0].precomputed == nil)
    #expect(plan.entries[0].replacement?.count == 32)
  }

  @Test(arguments: [("proj.weight", 62), ("proj.weight", 64), ("missing.weight", 63), ("ids", 4)])
  func unfitReplacementsAreRefused(name: String, count: Int) throws {
    let all = tensors + [TensorInfo(name: "ids", dtype: .i32, shape: [4])]
    var plan = try ConvertPlan(
      tensors: all, architecture: .recognise(config: nil, tensors: all),
      settings: ConvertSettings(), rules: [], location: "model.safetensors")
    #expect(throws: ConvertError.self) {
      try plan.replace(name, with: [Float](repeating: 0, count: count), reason: "test")
    }
    #expect(plan.entries.allSatisfy { $0.replacement == nil })
  }

  @Test func refusalNamesTheTensor() {
    let error = ConvertError.invalidReplacement(
      location: "model.safetensors", tensor: "proj.weight", reason: "has 63 elements, not 62")
    #expect(error.description == "model.safetensors: tensor 'proj.weight' has 63 elements, not 62")
  }
}
