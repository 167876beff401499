#if !DEBUG
import Foundation
import QFormats
import Testing

@testable import QEngine

/// Release-only: writes our logits for Tests/RealModels/check-engine-mlx.sh to compare with
/// `mlx_lm`, and runs the toy VLM on an image. Each test is disabled without its environment
/// variables; the script compares the logits, these tests check their shape and that they are finite.
///
/// - `QENGINE_MLX_MODEL`: a model folder or pack; `QENGINE_MLX_TOKENS`: comma-separated ids;
///   `QENGINE_MLX_OUT`: where the `[tokens, vocabulary]` float32 logits go (raw little-endian).
/// - `QENGINE_MLX_VLM`, `QENGINE_MLX_IMAGE`: a LLaVA folder and an image to generate from.
@Suite struct VLMEngineMLXTests {
  static let environment = ProcessInfo.processInfo.environment

  @Test(
    .enabled(
      if: environment["QENGINE_MLX_MODEL"] != nil && environment["QENGINE_MLX_TOKENS"] != nil
        && environment["QENGINE_MLX_OUT"] != nil,
      "needs QENGINE_MLX_MODEL, QENGINE_MLX_TOKENS and QENGINE_MLX_OUT (Tests/RealModels/check-engine-mlx.sh)"))
  func logitsForTheMLXComparison() throws {
    let folder = try #require(Self.environment["QENGINE_MLX_MODEL"])
    let list = try #require(Self.environment["QENGINE_MLX_TOKENS"])
    let out = try #require(Self.environment["QENGINE_MLX_OUT"])
    let tokens = list.split(separator: ",").compactMap { Int($0) }
    let checkpoint = try Checkpoint.open(folder)
    let config = try ModelConfig(data: try #require(checkpoint.configData), location: folder)
    let start = Date()
    let model = try DecoderModel(source: checkpoint.source, config: config)
    let loaded = Date()
    let logits = try model.logits(tokens: tokens)
    let done = Date()
    #expect(!tokens.isEmpty && logits.rows == tokens.count)
    #expect(logits.columns == model.configuration.vocabularySize)
    let finite = logits.elements.allSatisfy { $0.isFinite }
    #expect(finite)
    let data = logits.elements.withUnsafeBufferPointer { Data(buffer: $0) }
    try data.write(to: URL(fileURLWithPath: out))
    print(
      String(
        format: "engine: load %.2f s, logits of %d tokens %.2f s, weights resident %.1f MB", loaded.timeIntervalSince(start),
        tokens.count, done.timeIntervalSince(loaded), Double(model.residentWeightBytes) / 1e6))
  }

  @Test(
    .enabled(
      if: environment["QENGINE_MLX_VLM"] != nil && environment["QENGINE_MLX_IMAGE"] != nil,
      "needs QENGINE_MLX_VLM and QENGINE_MLX_IMAGE (Tests/RealModels/check-engine-mlx.sh)"))
  func toyVLMGeneratesFromAnImage() throws {
    let folder = try #require(Self.environment["QENGINE_MLX_VLM"])
    let imagePath = try #require(Self.environment["QENGINE_MLX_IMAGE"])
    let checkpoint = try Checkpoint.open(folder)
    let config = try ModelConfig(data: try #require(checkpoint.configData), location: folder)
    let start = Date()
    let model = try VisionLanguageModel(source: checkpoint.source, config: config)
    let tokenizer = try BPETokenizer(folder: URL(fileURLWithPath: folder))
    let loaded = Date()
    let pixels = model.preprocessor(try Image.load(path: imagePath))
    let features = try model.imageFeatures(pixels: pixels)
    let encoded = Date()
    let tokens = tokenizer.encode("Describe this image.")
    let embeddings = try model.inputEmbeddings(tokens: tokens, features: features)
    let generated = try model.decoder.generate(embeddings: embeddings, maxTokens: 16, eos: [])
    let done = Date()
    let finiteFeatures = features.elements.allSatisfy { $0.isFinite }
    #expect(features.rows > 0 && finiteFeatures)
    #expect(embeddings.rows >= features.rows && embeddings.columns == model.decoder.configuration.hiddenSize)
    // No end-of-sequence ids were given, so generation runs its full length.
    #expect(generated.count == 16)
    print(
      String(
        format: "toy VLM: load %.2f s; image %dx%d -> %d features in %.2f s; %d positions + 16 greedy tokens in %.2f s",
        loaded.timeIntervalSince(start), pixels.width, pixels.height, features.rows, encoded.timeIntervalSince(loaded),
        embeddings.rows, done.timeIntervalSince(encoded)))
    print("toy VLM output: \(tokenizer.decode(generated).debugDescription) \(generated)")
  }
}
#endif
