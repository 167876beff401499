import Foundation
import QEngine
import QFormats
import Testing

/// A language model stored under `model.language_model.` (multimodal wrappers since
/// transformers 4.52) runs with its own untied `lm_head.weight`, which stays at the top level.
@Suite struct DecoderNamingTests {
  static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
    .appendingPathComponent("../../Fixtures/naming").standardized

  func model(_ folder: String, prefix: String) throws -> DecoderModel {
    let checkpoint = try Checkpoint.open(Self.root.appendingPathComponent(folder).path)
    let data = try #require(checkpoint.configData)
    let config = try ModelConfig(data: data, location: checkpoint.configPath ?? folder)
    return try DecoderModel(source: checkpoint.source, config: config, prefix: prefix)
  }

  @Test func aWrappedLanguageModelUsesItsTopLevelHead() throws {
    let tokens = [1, 5, 9, 33, 63]
    let plain = try model("llama-causal", prefix: "").logits(tokens: tokens)
    let wrapped = try model("llama-wrapped", prefix: "model.language_").logits(tokens: tokens)
    #expect(wrapped.rows == plain.rows && wrapped.columns == plain.columns)
    for r in 0..<plain.rows {
      for c in 0..<plain.columns { #expect(wrapped[r, c] == plain[r, c]) }
    }
  }
}
