import Foundation
import QCompute
import QFormats

@testable import QEngine

/// Reads what Fixtures/make_llm_fixtures.py wrote, and builds packs in temporary files.
enum LLMFixtures {
  /// The repository's Fixtures folder: Tests/QEngineTests/<file> -> root -> Fixtures.
  static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent().appending(path: "Fixtures")

  struct Case: Decodable, Sendable, CustomStringConvertible {
    var name: String
    var folder: String
    var config: String
    var tokens: [Int]
    var logits: [Float]
    var context: Int
    var meanNLL: Double
    var scored: Int
    var prompt: [Int]
    var generated: [Int]
    var description: String { name }

    enum CodingKeys: String, CodingKey {
      case name, folder, config, tokens, logits, context, prompt, generated, scored
      case meanNLL = "mean_nll"
    }
  }

  static let cases: [Case] = {
    struct File: Decodable { var cases: [Case] }
    guard let data = try? Data(contentsOf: root.appending(path: "llm/expected.json")),
      let file = try? JSONDecoder().decode(File.self, from: data)
    else { return [] }
    return file.cases
  }()

  static func config(_ relativePath: String) throws -> ModelConfig {
    let url = root.appending(path: relativePath)
    return try ModelConfig(data: try Data(contentsOf: url), location: url.path)
  }

  static func source(_ folder: String) throws -> SafetensorsFile {
    try SafetensorsFile(path: root.appending(path: folder).appending(path: "model.safetensors").path)
  }

  static func model(_ testCase: Case, dequantizePacks: Bool = false) throws -> DecoderModel {
    try DecoderModel(source: try source(testCase.folder), config: try config(testCase.config))
  }

  /// Writes `tensors` to a temporary qpack, packing those that have a spec; the caller removes it.
  static func writePack(_ tensors: [(info: TensorInfo, values: [Float], spec: PackSpec?)]) throws -> String {
    var plan: [TensorInfo] = []
    var metadata = [PackDescription.versionKey: PackDescription.version]
    var payloads: [(name: String, bytes: [UInt8])] = []
    for (info, values, spec) in tensors {
      if let spec {
        let packed = try values.withUnsafeBufferPointer {
          try PackEncoder.pack($0, info: info, spec: spec, location: "test")
        }
        metadata[packed.metadataEntry.key] = packed.metadataEntry.value
        for companion in packed.companions {
          plan.append(companion.info)
          payloads.append((companion.info.name, companion.bytes))
        }
      } else {
        let stored = TensorInfo(name: info.name, dtype: .f32, shape: info.shape)
        plan.append(stored)
        payloads.append((info.name, values.withUnsafeBytes { [UInt8]($0) }))
      }
    }
    let path = FileManager.default.temporaryDirectory
      .appendingPathComponent("llm-pack-\(UUID().uuidString).safetensors").path
    let writer = try SafetensorsWriter(path: path, plan: plan, metadata: metadata, order: .asGiven)
    for payload in payloads { try writer.append(name: payload.name, bytes: payload.bytes) }
    try writer.finish()
    return path
  }

  /// Deterministic values in [-1, 1).
  static func values(count: Int, seed: UInt64) -> [Float] {
    var state = seed
    return (0..<count).map { _ in
      state = state &* 6364136223846793005 &+ 1442695040888963407
      return Float(state >> 40) / Float(1 << 24) * 2 - 1
    }
  }
}
