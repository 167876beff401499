import Foundation
import QCompute
import QFormats
import Testing

@testable import QEngine

/// The whole decoder's backward against finite differences, and its forward against the inference engine.
@Suite struct TrainingDecoderTests {
  /// A random decoder in Double: GQA, odd widths, Qwen2 biases and an untied head when asked.
  static func randomGraph(qwen: Bool, seed: UInt64) -> DecoderGraph<Double> {
    let c = DecoderConfiguration(
      vocabularySize: 11, hiddenSize: 7, layerCount: 2, headCount: 4, keyValueHeadCount: 2, headDimension: 4,
      intermediateSize: 5, normEpsilon: 1e-5, ropeTheta: 100, tiedEmbeddings: !qwen)
    var generator = SeededGenerator(seed: seed)
    var tensors: [String: [Double]] = [:]
    var shapes: [String: [Int]] = [:]
    func put(_ name: String, _ shape: [Int], around center: Double = 0) {
      shapes[name] = shape
      tensors[name] = GradientCheck.random(shape.reduce(1, *), &generator, scale: 0.5).map { $0 + center }
    }
    put("model.embed_tokens.weight", [11, 7])
    for index in 0..<2 {
      let p = "model.layers.\(index)."
      put(p + "input_layernorm.weight", [7], around: 1)
      put(p + "post_attention_layernorm.weight", [7], around: 1)
      put(p + "self_attn.q_proj.weight", [16, 7])
      put(p + "self_attn.k_proj.weight", [8, 7])
      put(p + "self_attn.v_proj.weight", [8, 7])
      put(p + "self_attn.o_proj.weight", [7, 16])
      put(p + "mlp.gate_proj.weight", [5, 7])
      put(p + "mlp.up_proj.weight", [5, 7])
      put(p + "mlp.down_proj.weight", [7, 5])
      if qwen {
        put(p + "self_attn.q_proj.bias", [16])
        put(p + "self_attn.k_proj.bias", [8])
        put(p + "self_attn.v_proj.bias", [8])
      }
    }
    put("model.norm.weight", [7], around: 1)
    if qwen { put("lm_head.weight", [11, 7]) }
    return DecoderGraph(configuration: c, tensors: tensors, shapes: shapes)
  }

  /// Checks three entries of every trainable parameter.
  static func check(_ graph: DecoderGraph<Double>, sequences: [[Int]], seed: UInt64) throws {
    var generator = SeededGenerator(seed: seed)
    let rows = sequences.reduce(0) { $0 + $1.count }
    let r = GradientCheck.random(rows * graph.configuration.vocabularySize, &generator)
    let (_, cache) = try graph.forward(sequences: sequences)
    let trainable = Set(graph.tensors.keys)
    let gradients = try graph.backward(dLogits: r, cache: cache, trainable: trainable)
    for name in trainable.sorted() {
      let values = try #require(graph.tensors[name])
      let analytic = try #require(gradients[name], "no gradient for \(name)")
      let indices = (0..<3).map { _ in Int.random(in: 0..<values.count, using: &generator) }
      let numeric = try GradientCheck.numerical(values, indices: indices) { perturbed in
        var copy = graph
        copy.tensors[name] = perturbed
        return GradientCheck.dot(r, try copy.forward(sequences: sequences).logits)
      }
      let error = GradientCheck.relativeError(analytic: analytic, numeric: numeric)
      #expect(error < 1e-6, "\(name): relative error \(error)")
    }
  }

  @Test(arguments: [false, true])
  func wholeDecoderGradients(qwen: Bool) throws {
    let graph = Self.randomGraph(qwen: qwen, seed: qwen ? 3 : 4)
    try Self.check(graph, sequences: [[1, 5, 10, 0, 5]], seed: 11)
    try Self.check(graph, sequences: [[2], [7, 3, 3]], seed: 12)
  }

  @Test func loraGradientsOnTheWholeDecoder() throws {
    var graph = Self.randomGraph(qwen: true, seed: 5)
    var generator = SeededGenerator(seed: 6)
    for module in ["model.layers.0.self_attn.q_proj", "model.layers.1.mlp.down_proj"] {
      let shape = try #require(graph.shapes[module + ".weight"])
      graph.tensors[module + ".lora_A.weight"] = GradientCheck.random(2 * shape[1], &generator)
      graph.tensors[module + ".lora_B.weight"] = GradientCheck.random(shape[0] * 2, &generator)
      graph.adapters[module] = LoRAAdapter(rank: 2, scale: 1.5)
    }
    try Self.check(graph, sequences: [[4, 9, 1, 2]], seed: 13)
  }

  /// With a grid, the latent weight's gradient is the grid weight's gradient where the STE passes,
  /// else 0. The tied embedding is used twice, looked up and as the head: both uses read the grid.
  @Test(arguments: [("model.layers.0.mlp.up_proj.weight", [5, 7]), ("model.embed_tokens.weight", [11, 7])])
  func straightThroughEstimatorMasksTheGridWeightGradient(name: String, shape: [Int]) throws {
    var graph = Self.randomGraph(qwen: false, seed: 8)
    // With 4-bit scales, a scale rounded down leaves its group's extremes outside the grid.
    let quantizer = GroupAffineFakeQuantizer(bits: 2, groupSize: 3, scaleGroupSize: 4)
    graph.quantizers[name] = quantizer
    let tokens = [[3, 1, 4, 1, 5]]
    let (logits, cache) = try graph.forward(sequences: tokens)
    let r = logits.indices.map { Double($0 % 5) * 0.1 - 0.2 }
    let gradients = try graph.backward(dLogits: r, cache: cache, trainable: [name])
    let latent = try #require(graph.tensors[name])
    let (grid, passes) = quantizer.fakeQuantize(latent.map { Float($0) }, rows: shape[0], columns: shape[1])
    var plain = graph
    plain.quantizers = [:]
    plain.tensors[name] = grid.map(Double.init)
    let (plainLogits, plainCache) = try plain.forward(sequences: tokens)
    // The same arithmetic on the same values: the quantized forward is the grid model's.
    #expect(logits == plainLogits)
    let reference = try #require(try plain.backward(dLogits: r, cache: plainCache, trainable: [name])[name])
    let analytic = try #require(gradients[name])
    for index in analytic.indices {
      #expect(abs(analytic[index] - (passes[index] ? reference[index] : 0)) < 1e-9)
    }
    #expect(passes.contains(false) && passes.contains(true))
  }

  @Test func fakeQuantizerMaskStopsClampedWeights() {
    // Three groups of four at 2 bits with scales [1, 1.03, 2] (zeros 1); one chunk of 4-bit scales:
    // step 1/15, zero -15, so 1.03 rounds down to 1 and the middle group's extremes fall outside
    // [-s z, s (3 - z)] = [-1, 2].
    let weights: [Float] = [-1, 0, 1, 2, -1.03, 0, 1, 2.06, -2, 0, 2, 4]
    let quantizer = GroupAffineFakeQuantizer(bits: 2, groupSize: 4, scaleGroupSize: 3)
    let (values, passes) = quantizer.fakeQuantize(weights, rows: 1, columns: 12)
    let expected: [Float] = [-1, 0, 1, 2, -1, 0, 1, 2, -2, 0, 2, 4]
    #expect(zip(values, expected).allSatisfy { abs($0 - $1) < 1e-5 })
    #expect(passes == [true, true, true, true, false, true, true, false, true, true, true, true])
  }

  @Test func forwardMatchesTheInferenceEngine() throws {
    let folder = LLMFixtures.root.appending(path: "tiny-llama")
    let source = try SafetensorsFile(path: folder.appending(path: "model.safetensors").path)
    let config = try ModelConfig(data: try Data(contentsOf: folder.appending(path: "config.json")), location: folder.path)
    let model = try DecoderModel(source: source, config: config)
    let decoder = TrainableDecoder(model: model)
    let tokens = [1, 17, 200, 255, 5, 5, 99, 123, 7]
    let reference = try model.logits(tokens: tokens)
    let pass = try decoder.forward(tokens: tokens)
    #expect(pass.logits.rows == reference.rows && pass.logits.columns == reference.columns)
    let worst = zip(pass.logits.elements, reference.elements).map { abs($0 - $1) }.max() ?? .infinity
    #expect(worst < 1e-5)
    // A batch runs each sequence from position 0.
    let batch = try decoder.forward(sequences: [Array(tokens[0..<4]), tokens])
    let second = Array(batch.logits.elements[(4 * reference.columns)...])
    #expect(zip(second, reference.elements).allSatisfy { abs($0 - $1) < 1e-5 })
  }

  @Test func loraStepsReduceTheLossOnTinyChat() throws {
    let folder = LLMFixtures.root.appending(path: "tiny-chat")
    let source = try SafetensorsFile(path: folder.appending(path: "model.safetensors").path)
    let config = try ModelConfig(data: try Data(contentsOf: folder.appending(path: "config.json")), location: folder.path)
    let tokenizer = try BPETokenizer(folder: folder)
    let text = try String(contentsOf: LLMFixtures.root.appending(path: "tiny-chat.sample.txt"), encoding: .utf8)
    let tokens = Array(tokenizer.encode(text).prefix(33))
    var decoder = try TrainableDecoder(source: source, config: config)
    try decoder.addLoRA(rank: 4, alpha: 8, targets: ["q_proj", "v_proj", "down_proj"], seed: 1)
    #expect(decoder.trainable.allSatisfy { $0.contains("lora_") })
    let inputs = Array(tokens.dropLast())
    let targets = Array(tokens.dropFirst())
    var optimizer = AdamW(weightDecay: 0)
    let schedule = CosineSchedule(peak: 1e-2, totalSteps: 6, warmupSteps: 1)
    var losses: [Double] = []
    for step in 0..<6 {
      let pass = try decoder.forward(tokens: inputs)
      let loss = try TrainingLoss.crossEntropy(
        logits: pass.logits.elements, vocabularySize: decoder.configuration.vocabularySize, targets: targets,
        labelSmoothing: 0.1)
      losses.append(loss.value)
      var gradients = try decoder.backward(pass, dLogits: loss.gradient)
      GradientClipping.clip(&gradients, maxNorm: 1)
      try optimizer.update(&decoder.parameters, gradients: gradients, learningRate: schedule.learningRate(at: step + 1))
    }
    #expect(losses.count == 6)
    #expect(try #require(losses.last) < losses[0] - 0.05, "losses \(losses)")
  }
}
