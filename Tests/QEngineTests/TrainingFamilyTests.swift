import Foundation
import QCompute
import QFormats
import Testing

@testable import QEngine

/// The training graph on each architecture feature: its backward against finite differences,
/// and its forward against the inference engine on the family fixtures.
@Suite struct TrainingFamilyTests {
  struct Variant: CustomTestStringConvertible, Sendable {
    var name: String
    var architecture: DecoderArchitecture
    var testDescription: String { name }
  }

  static let variants: [Variant] = {
    var qwen3 = DecoderArchitecture()
    qwen3.queryKeyNorms = true
    // Gemma 3's block: window 2 on layer 0 (sequences of 5 cross it), its own rope per layer.
    var gemma3 = DecoderArchitecture()
    gemma3.normWeightOffset = 1
    gemma3.activation = .geluTanh
    gemma3.queryKeyNorms = true
    gemma3.sandwichNorms = true
    gemma3.embeddingScale = 2.6
    gemma3.attentionScale = 0.4
    gemma3.layers = [
      .init(slidingWindow: 2, rope: .init(theta: 100)),
      .init(rope: .init(theta: 1000, scaling: .linear(factor: 2))),
    ]
    // Gemma 2's: soft-capping small enough to bend the scores and logits.
    var gemma2 = DecoderArchitecture()
    gemma2.normWeightOffset = 1
    gemma2.activation = .geluTanh
    gemma2.sandwichNorms = true
    gemma2.attentionSoftcap = 0.9
    gemma2.finalSoftcap = 1.7
    gemma2.layers = [.init(slidingWindow: 2, rope: .init(theta: 100)), .init(rope: .init(theta: 100))]
    // SmolLM3's NoPE layer.
    var noPE = DecoderArchitecture()
    noPE.layers = [.init(rope: .init(theta: 100)), .init(rope: nil)]
    // Phi-3's LongRoPE: sequences of 5 use the long factors, the one of 1 the short ones.
    var longrope = DecoderArchitecture()
    let scaling = RopeScaling.longrope(
      shortFactors: [1.3, 2.1], longFactors: [1.7, 4.5], originalContext: 2, attentionFactor: 1.4)
    longrope.layers = [.init(rope: .init(theta: 100, scaling: scaling)), .init(rope: .init(theta: 100, scaling: scaling))]
    // Phi-3's whole block: LongRoPE with q/k/v and gate/up stored fused.
    var phi3 = longrope
    phi3.fusedProjections = true
    return [
      Variant(name: "longrope", architecture: longrope), Variant(name: "phi3", architecture: phi3),
      Variant(name: "qwen3", architecture: qwen3), Variant(name: "gemma3", architecture: gemma3),
      Variant(name: "gemma2", architecture: gemma2), Variant(name: "nope", architecture: noPE),
    ]
  }()

  /// A random two-layer decoder in Double with every tensor `architecture` names.
  static func randomGraph(_ architecture: DecoderArchitecture, seed: UInt64) -> DecoderGraph<Double> {
    var c = DecoderConfiguration(
      vocabularySize: 11, hiddenSize: 7, layerCount: 2, headCount: 4, keyValueHeadCount: 2, headDimension: 4,
      intermediateSize: 5, normEpsilon: 1e-5, ropeTheta: 100, tiedEmbeddings: true)
    c.architecture = architecture
    var generator = SeededGenerator(seed: seed)
    var tensors: [String: [Double]] = [:]
    var shapes: [String: [Int]] = [:]
    func put(_ name: String, _ shape: [Int], around center: Double = 0) {
      shapes[name] = shape
      tensors[name] = GradientCheck.random(shape.reduce(1, *), &generator, scale: 0.5).map { $0 + center }
    }
    // Norm multipliers near 1 whatever the offset.
    let normCenter = 1 - Double(architecture.normWeightOffset)
    put("model.embed_tokens.weight", [11, 7])
    for index in 0..<2 {
      let p = "model.layers.\(index)."
      for norm in BlockNorm.allCases {
        if let suffix = architecture.normSuffix(norm) { put(p + suffix, [c.width(of: norm)], around: normCenter) }
      }
      for linear in architecture.storedLinears {
        let (rows, columns) = linear.shape(c)
        put(p + linear.module + ".weight", [rows, columns])
      }
    }
    put("model.norm.weight", [7], around: normCenter)
    return DecoderGraph(configuration: c, tensors: tensors, shapes: shapes)
  }

  @Test(arguments: variants)
  func wholeDecoderGradients(_ variant: Variant) throws {
    let graph = Self.randomGraph(variant.architecture, seed: 21)
    try TrainingDecoderTests.check(graph, sequences: [[1, 5, 10, 0, 5]], seed: 22)
    try TrainingDecoderTests.check(graph, sequences: [[2], [7, 3, 3, 9]], seed: 23)
  }

  /// The features change the logits: each variant differs from the same weights run as Llama
  /// with the same norms (Qwen3 has nothing else).
  @Test(arguments: variants.filter { $0.name != "qwen3" && !$0.architecture.fusedProjections })
  func eachFeatureChangesTheLogits(_ variant: Variant) throws {
    let graph = Self.randomGraph(variant.architecture, seed: 24)
    var plain = graph
    plain.configuration.architecture = DecoderArchitecture()
    plain.configuration.architecture.queryKeyNorms = variant.architecture.queryKeyNorms
    plain.configuration.architecture.sandwichNorms = variant.architecture.sandwichNorms
    let sequence = [[1, 5, 10, 0, 5]]
    let ours = try graph.forward(sequences: sequence).logits
    let reference = try plain.forward(sequences: sequence).logits
    #expect(zip(ours, reference).map { abs($0 - $1) }.max() ?? 0 > 1e-3)
  }

  /// The training forward gives the inference engine's logits on every family fixture.
  @Test(arguments: FamilyFixtures.cases)
  func forwardMatchesTheInferenceEngine(_ testCase: FamilyFixtures.Case) throws {
    let model = try FamilyFixtures.model(testCase)
    let decoder = TrainableDecoder(model: model)
    let reference = try model.logits(tokens: testCase.tokens)
    let pass = try decoder.forward(sequences: [Array(testCase.tokens.prefix(5)), testCase.tokens])
    let second = pass.logits.elements.dropFirst(5 * reference.columns)
    let worst = FamilyFixtures.worstDifference(second, reference.elements)
    #expect(worst <= FamilyFixtures.tolerance(testCase), "largest difference \(worst)")
    let first = pass.logits.elements.prefix(5 * reference.columns)
    #expect(FamilyFixtures.worstDifference(first, reference.elements) <= FamilyFixtures.tolerance(testCase))
  }

  /// Phi-3's fused weights are the split ones stacked: the same weights run fused and apart give
  /// the same logits, and each fused weight's gradient is its parts' gradients stacked by rows.
  /// Only the order of BLAS sums differs (at most 16 terms in Double), hence 1e-12 relative.
  @Test func fusedProjectionsMatchTheSplitOnes() throws {
    let fused = Self.randomGraph(try #require(Self.variants.first { $0.name == "phi3" }).architecture, seed: 31)
    var split = fused
    split.configuration.architecture.fusedProjections = false
    let c = fused.configuration
    for index in 0..<c.layerCount {
      let p = "model.layers.\(index)."
      for linear in fused.configuration.architecture.storedLinears where linear.isFused {
        let values = try #require(split.tensors[p + linear.module + ".weight"])
        split.tensors[p + linear.module + ".weight"] = nil
        split.shapes[p + linear.module + ".weight"] = nil
        for (slot, part) in zip(linear.slots, RowStack.split(values, rows: linear.rowCounts(c), columns: c.hiddenSize)) {
          split.tensors[p + slot.rawValue + ".weight"] = part
          split.shapes[p + slot.rawValue + ".weight"] = [c.shape(of: slot).rows, c.hiddenSize]
        }
      }
    }
    let sequences = [[2], [7, 3, 3, 9, 1]]
    var generator = SeededGenerator(seed: 32)
    let r = GradientCheck.random(6 * c.vocabularySize, &generator)
    let (fusedLogits, fusedCache) = try fused.forward(sequences: sequences)
    let (splitLogits, splitCache) = try split.forward(sequences: sequences)
    func close(_ a: [Double], _ b: [Double]) -> Bool {
      let scale = max(a.map(abs).max() ?? 0, b.map(abs).max() ?? 0, 1e-300)
      return a.count == b.count && zip(a, b).allSatisfy { abs($0 - $1) <= 1e-12 * scale }
    }
    #expect(close(fusedLogits, splitLogits))
    let fusedGradients = try fused.backward(dLogits: r, cache: fusedCache, trainable: Set(fused.tensors.keys))
    let splitGradients = try split.backward(dLogits: r, cache: splitCache, trainable: Set(split.tensors.keys))
    for (name, gradient) in fusedGradients {
      let linear = c.architecture.storedLinears.first { $0.isFused && name.hasSuffix($0.module + ".weight") }
      let expected: [Double]
      if let linear {
        let prefix = String(name.dropLast((linear.module + ".weight").count))
        expected = try linear.slots.flatMap { try #require(splitGradients[prefix + $0.rawValue + ".weight"]) }
      } else {
        expected = try #require(splitGradients[name])
      }
      #expect(close(gradient, expected), "\(name)")
    }
    #expect(fusedGradients.count == splitGradients.count - 6)
  }

  /// A calibration block (its layer's window and rope, Phi-3's fused weights) computes what the
  /// inference block does.
  @Test(arguments: ["gemma3_text", "phi3"], [0, 1])
  func blockMatchesInference(family: String, block: Int) throws {
    let testCase = try #require(FamilyFixtures.cases.first { $0.name == family })
    let model = try FamilyFixtures.model(testCase)
    var x = try model.embeddings(tokens: testCase.tokens)
    let input = x
    try model.runBlock(model.layers[block], block: block, x: &x, count: testCase.tokens.count)
    let decoderBlock = try DecoderBlock(model: model, block: block)
    let output = try decoderBlock.output(input: input, lengths: [testCase.tokens.count], replacing: [:])
    let largest = x.map(abs).max() ?? 1
    #expect(FamilyFixtures.worstDifference(output, x) <= 1e-5 * max(largest, 1))
  }

  @Test func aPrefixWithoutALayerNumberIsRefusedWhenLayersDiffer() throws {
    var c = DecoderConfiguration(
      vocabularySize: 11, hiddenSize: 7, layerCount: 2, headCount: 4, keyValueHeadCount: 2, headDimension: 4,
      intermediateSize: 5)
    c.architecture = try #require(Self.variants.first { $0.name == "gemma3" }).architecture
    #expect(
      throws: TrainingError.invalidInput(
        operation: "DecoderBlock", reason: "prefix 'block.' names no layer, whose settings differ by layer")
    ) {
      try DecoderBlock(configuration: c, layerPrefix: "block.", parameters: [:])
    }
  }
}
