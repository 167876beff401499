import Foundation
import QFormats

@testable import QEngine

/// Reads what Fixtures/make_family_fixtures.py wrote: one tiny checkpoint per family and, per
/// case, the logits its reference (transformers, or np_llm.py) computes.
enum FamilyFixtures {
  static let root = LLMFixtures.root.appending(path: "families")

  struct Case: Decodable, Sendable, CustomStringConvertible {
    var name: String
    var folder: String
    var config: String
    var tokens: [Int]
    var logits: [Float]
    var description: String { name }
  }

  /// Every case of `expected/`, in name order.
  static let cases: [Case] = {
    let folder = root.appending(path: "expected")
    let names = (try? FileManager.default.contentsOfDirectory(atPath: folder.path)) ?? []
    return names.filter { $0.hasSuffix(".json") }.compactMap { name -> Case? in
      guard let data = try? Data(contentsOf: folder.appending(path: name)) else { return nil }
      return try? JSONDecoder().decode(Case.self, from: data)
    }.sorted { $0.name < $1.name }
  }()

  static func config(_ testCase: Case) throws -> ModelConfig {
    let url = root.appending(path: testCase.config)
    return try ModelConfig(data: try Data(contentsOf: url), location: url.path)
  }

  static func source(_ testCase: Case) throws -> SafetensorsFile {
    try SafetensorsFile(path: root.appending(path: testCase.folder).appending(path: "model.safetensors").path)
  }

  /// The case's decoder, under the prefix its embedding's name shows (`model.language_` in the
  /// gemma3 wrapper, whose text model is `model.language_model.*`).
  static func model(_ testCase: Case) throws -> DecoderModel {
    let source = try source(testCase)
    let suffix = "model.embed_tokens.weight"
    let embedding = source.tensors.first { $0.name.hasSuffix(suffix) }?.name ?? suffix
    return try DecoderModel(source: source, config: try config(testCase), prefix: String(embedding.dropLast(suffix.count)))
  }

  /// 1e-4 of the largest reference logit (at least 1e-4): float32 sums of a few hundred terms.
  static func tolerance(_ testCase: Case) -> Float { 1e-4 * max(testCase.logits.map(abs).max() ?? 0, 1) }

  static func worstDifference(_ ours: some Collection<Float>, _ reference: some Collection<Float>) -> Float {
    zip(ours, reference).map { abs($0 - $1) }.max() ?? .infinity
  }
}
