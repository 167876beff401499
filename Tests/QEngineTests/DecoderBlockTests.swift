import Foundation
import QCompute
import QFormats
import Testing

@testable import QEngine

/// One decoder layer as a reconstructable block: its loss gradients against finite differences
/// in Double, and its output against the inference engine's block.
@Suite struct DecoderBlockTests {
  /// Layer 1 of the random Double decoder as a block core.
  static func randomCore(qwen: Bool, seed: UInt64) throws -> DecoderBlockCore<Double> {
    let graph = TrainingDecoderTests.randomGraph(qwen: qwen, seed: seed)
    let prefix = "model.layers.1."
    return try DecoderBlockCore(
      configuration: graph.configuration, layerPrefix: prefix,
      parameters: graph.tensors.filter { $0.key.hasPrefix(prefix) })
  }

  @Test(arguments: [false, true])
  func reconstructionGradientsMatchFiniteDifferences(qwen: Bool) throws {
    let core = try Self.randomCore(qwen: qwen, seed: qwen ? 21 : 22)
    var generator = SeededGenerator(seed: 23)
    // Two stacked sequences, so the causal mask and the per-sequence positions both matter.
    let lengths = [3, 5]
    let input = GradientCheck.random(8 * 7, &generator)
    let target = GradientCheck.random(8 * 7, &generator)
    var replacing: [String: [Double]] = [:]
    for (name, shape) in core.linearShapes {
      // Perturbed weights, as a rounding optimiser's candidates are.
      replacing[name] = try core.graph.tensor(name).map { $0 + 0.1 }
      #expect(replacing[name]?.count == shape[0] * shape[1])
    }
    let (_, gradients) = try core.reconstruction(input: input, target: target, lengths: lengths, replacing: replacing)
    #expect(Set(gradients.keys) == Set(core.linearShapes.keys))
    for name in core.linearShapes.keys.sorted() {
      let values = try #require(replacing[name])
      let analytic = try #require(gradients[name])
      let indices = (0..<4).map { _ in Int.random(in: 0..<values.count, using: &generator) }
      let numeric = try GradientCheck.numerical(values, indices: indices) { perturbed in
        var copy = replacing
        copy[name] = perturbed
        return try core.reconstruction(input: input, target: target, lengths: lengths, replacing: copy).loss
      }
      let error = GradientCheck.relativeError(analytic: analytic, numeric: numeric)
      #expect(error < 1e-6, "\(name): relative error \(error)")
    }
  }

  /// Only the replaced weights get gradients, and replacing nothing reproduces the block.
  @Test func replacingChoosesTheGradients() throws {
    let core = try Self.randomCore(qwen: true, seed: 24)
    var generator = SeededGenerator(seed: 25)
    let input = GradientCheck.random(4 * 7, &generator)
    let name = "model.layers.1.mlp.up_proj.weight"
    let own = try core.graph.tensor(name)
    let plain = try core.forward(input: input, lengths: [4], replacing: [:]).output
    let same = try core.forward(input: input, lengths: [4], replacing: [name: own]).output
    #expect(plain == same)
    let (loss, gradients) = try core.reconstruction(input: input, target: plain, lengths: [4], replacing: [name: own])
    #expect(loss == 0)
    #expect(Array(gradients.keys) == [name])
    #expect(throws: TrainingError.self) {
      try core.forward(input: input, lengths: [4], replacing: ["model.layers.1.input_layernorm.weight": [1]])
    }
    #expect(throws: TrainingError.self) { try core.forward(input: input, lengths: [3], replacing: [:]) }
  }

  /// The block's output is what the inference engine's layer computes (an independent code path).
  @Test(arguments: [0, 1])
  func outputMatchesTheInferenceEngine(block: Int) throws {
    let folder = LLMFixtures.root.appending(path: "tiny-chat")
    let source = try SafetensorsFile(path: folder.appending(path: "model.safetensors").path)
    let config = try ModelConfig(data: try Data(contentsOf: folder.appending(path: "config.json")), location: folder.path)
    let model = try DecoderModel(source: source, config: config)
    let decoder = try DecoderBlock(model: model, block: block)
    #expect(decoder.linearShapes.count == 7)
    #expect(decoder.linearShapes["model.layers.\(block).self_attn.k_proj.weight"] == [32, 64])
    let tokens = [1, 17, 200, 255, 5, 5, 99, 123, 7]
    var x = try model.embeddings(tokens: tokens)
    let input = x
    try model.runBlock(model.layers[block], block: block, x: &x, count: tokens.count)
    let output = try decoder.output(input: input, lengths: [tokens.count], replacing: [:])
    let worst = zip(output, x).map { abs($0 - $1) }.max() ?? .infinity
    #expect(output.count == x.count && worst < 1e-4)
    // Two stacked copies each start at position 0.
    let twice = try decoder.output(input: input + input, lengths: [9, 9], replacing: [:])
    #expect(zip(twice[(9 * 64)...], x).allSatisfy { abs($0 - $1) < 1e-4 })
    let batch = BlockBatch(input: input, target: x, lengths: [9])
    #expect(try decoder.reconstruction(batch, replacing: [:]).loss < 1e-8)
  }
}
