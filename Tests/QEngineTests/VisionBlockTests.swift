import Foundation
import QFormats
import Testing

@testable import QEngine

/// The ViT block's forward against the engine and numpy, and its backward against finite
/// differences in Double.
@Suite("Vision block training")
struct VisionBlockTests {
  typealias Check = GradientCheck

  static func encoder(_ folder: String, prefix: String) throws -> VisionEncoder {
    try VisionEncoderTests.encoder(folder, prefix: prefix)
  }

  /// Each block applied to numpy's (float64) hidden state i gives numpy's hidden state i + 1.
  @Test(arguments: [
    ("tiny-dinov2", "", "dinov2"), ("tiny-dinov2", "", "dinov2.interpolated"), ("tiny-clip", "vision_model.", "clip"),
  ])
  func blockMatchesNumpy(folder: String, prefix: String, key: String) throws {
    let encoder = try Self.encoder(folder, prefix: prefix)
    let expected = try VisionFixtures.open("vision/expected.safetensors")
    let shape = try #require(expected.info(named: key + ".hidden")).shape
    let hidden = try expected.floats(of: key + ".hidden")
    let stride = shape[1] * shape[2]
    for index in 0..<encoder.blockCount {
      let block = try encoder.block(at: index, prefix: prefix)
      let input = Array(hidden[(index * stride)..<((index + 1) * stride)])
      let reference = Array(hidden[((index + 1) * stride)..<((index + 2) * stride)])
      let output = try block.output(input: input, lengths: [shape[1]], replacing: [:])
      #expect(VisionFixtures.maxAbsDifference(output, reference) < 1e-4, "\(key) block \(index)")
    }
  }

  /// Two images of different sizes stacked give each image's engine hidden states: attention
  /// stays inside each image.
  @Test func stackedImagesMatchTheEngine() throws {
    let encoder = try Self.encoder("tiny-dinov2", prefix: "")
    let expected = try VisionFixtures.open("vision/expected.safetensors")
    let images = try ["dinov2", "dinov2.interpolated"].map { try PixelTensor.load(from: expected, tensor: $0 + ".pixels") }
    let outputs = try images.map { try encoder.forward(pixels: $0) }
    var walker = try VisionBlockActivations(encoder: encoder, prefix: "", images: images)
    #expect(walker.lengths == outputs.map(\.tokenCount))
    var index = 0
    while let (block, batch) = try walker.next() {
      #expect(block.index == index)
      let engineInput = outputs.flatMap { $0.hiddenStates[index] }
      let engineOutput = outputs.flatMap { $0.hiddenStates[index + 1] }
      #expect(VisionFixtures.maxAbsDifference(batch.input, engineInput) < 1e-5)
      #expect(VisionFixtures.maxAbsDifference(batch.target, engineOutput) < 1e-5)
      index += 1
    }
    #expect(index == encoder.blockCount)
    #expect(walker.isFinished)
  }

  @Test func namesAndShapesFollowTheCheckpoint() throws {
    let encoder = try Self.encoder("tiny-clip", prefix: "vision_model.")
    let block = try encoder.block(at: 1, prefix: "vision_model.")
    let source = try VisionFixtures.open("vision/tiny-clip/model.safetensors")
    #expect(block.linearShapes.count == 6)
    for (name, shape) in block.linearShapes {
      #expect(source.info(named: name)?.shape == shape, "\(name)")
      #expect(try block.linearWeight(named: name) == source.floats(of: name))
    }
    #expect(throws: TrainingError.self) { try block.linearWeight(named: "vision_model.encoder.layers.1.mlp.fc3.weight") }
    #expect(throws: TrainingError.self) { try encoder.block(at: 2, prefix: "") }
    let input = [Float](repeating: 0.5, count: 3 * block.width)
    #expect(throws: TrainingError.self) {
      try block.output(input: input, lengths: [3], replacing: ["vision_model.encoder.layers.1.mlp.fc1.weight": [1, 2]])
    }
    #expect(throws: TrainingError.self) { try block.output(input: input, lengths: [2], replacing: [:]) }
  }

  /// The training GELUs against the engine's inference kernels (tanh GELU has no tower fixture).
  @Test(arguments: [VisionConfig.Activation.gelu, .tanhGELU, .quickGELU])
  func activationMatchesTheEngine(activation: VisionConfig.Activation) {
    let x = (0..<65).map { Float($0 - 32) / 6 }
    var engine = x
    VisionKernels.activate(&engine, activation)
    let training = VisionTrainingOps.activate(x, activation)
    #expect(VisionFixtures.maxAbsDifference(training, engine) < 2e-6)
  }

  // MARK: Gradients

  static func randomGraph(
    width: Int, heads: Int, intermediate: Int, activation: VisionConfig.Activation, layerScale: Bool,
    seed: UInt64
  ) -> VisionBlockGraph<Double> {
    var generator = SeededGenerator(seed: seed)
    func random(_ count: Int, scale: Double = 0.5) -> [Double] { Check.random(count, &generator, scale: scale) }
    var weights: [VisionLinearSlot: [Double]] = [:]
    var biases: [VisionLinearSlot: [Double]] = [:]
    let graph = VisionBlockGraph<Double>(
      width: width, intermediate: intermediate, heads: heads, epsilon: 1e-6, activation: activation,
      norm1Weight: random(width).map { $0 + 1 }, norm1Bias: random(width, scale: 0.1),
      norm2Weight: random(width).map { $0 + 1 }, norm2Bias: random(width, scale: 0.1), weights: [:], biases: [:],
      scale1: layerScale ? random(width) : nil, scale2: layerScale ? random(width) : nil)
    for slot in VisionLinearSlot.allCases {
      let (outputs, inputs) = graph.shape(of: slot)
      weights[slot] = random(outputs * inputs, scale: 1 / Double(inputs).squareRoot() * 1.5)
      biases[slot] = random(outputs, scale: 0.2)
    }
    var result = graph
    result.weights = weights
    result.biases = biases
    return result
  }

  struct GradientCase: CustomTestStringConvertible, Sendable {
    var activation: VisionConfig.Activation
    var layerScale: Bool
    var lengths: [Int]
    var width: Int
    var heads: Int
    var testDescription: String { "\(activation) scale=\(layerScale) lengths=\(lengths) width=\(width)/\(heads)" }
  }

  /// d Σ r·block(x) with respect to the input and every linear weight, against central differences.
  @Test(arguments: [
    GradientCase(activation: .gelu, layerScale: true, lengths: [3, 5], width: 8, heads: 2),
    GradientCase(activation: .gelu, layerScale: false, lengths: [1], width: 8, heads: 4),
    GradientCase(activation: .tanhGELU, layerScale: false, lengths: [4, 1, 2], width: 6, heads: 3),
    GradientCase(activation: .quickGELU, layerScale: false, lengths: [7], width: 4, heads: 1),
    GradientCase(activation: .quickGELU, layerScale: true, lengths: [2, 2], width: 8, heads: 2),
  ])
  func gradientsMatchFiniteDifferences(_ c: GradientCase) throws {
    let graph = Self.randomGraph(
      width: c.width, heads: c.heads, intermediate: 2 * c.width + 1, activation: c.activation, layerScale: c.layerScale,
      seed: UInt64(c.width * 31 + c.lengths.count))
    var generator = SeededGenerator(seed: 7)
    let rows = c.lengths.reduce(0, +)
    let x = Check.random(rows * c.width, &generator)
    let r = Check.random(rows * c.width, &generator)
    let (_, cache) = try graph.forward(x, lengths: c.lengths)
    let (dx, dWeights) = try graph.backward(r, cache: cache, slots: Set(VisionLinearSlot.allCases))
    let numericX = try Check.numerical(x) { Check.dot(r, try graph.forward($0, lengths: c.lengths).output) }
    #expect(Check.relativeError(analytic: dx, numeric: numericX) < 1e-6, "input")
    for slot in VisionLinearSlot.allCases {
      let weight = try #require(graph.weights[slot])
      let numeric = try Check.numerical(weight) {
        Check.dot(r, try graph.forward(x, lengths: c.lengths, replacing: [slot: $0]).output)
      }
      #expect(Check.relativeError(analytic: try #require(dWeights[slot]), numeric: numeric) < 1e-6, "\(slot)")
    }
  }

  /// Gradients only for the slots asked for.
  @Test func backwardSkipsSlotsNotAsked() throws {
    let graph = Self.randomGraph(width: 4, heads: 2, intermediate: 6, activation: .gelu, layerScale: true, seed: 3)
    let x = [Double](repeating: 0.3, count: 8).enumerated().map { $0.element * Double($0.offset) }
    let (output, cache) = try graph.forward(x, lengths: [2])
    let (_, gradients) = try graph.backward(output, cache: cache, slots: [.fc1, .output])
    #expect(Set(gradients.keys) == [.fc1, .output])
  }

  /// The public reconstruction (Float) against finite differences of mean((out - target)²) in
  /// Double on the same block, for every linear of a fixture tower's block.
  @Test func reconstructionGradientOfAFixtureBlock() throws {
    let encoder = try Self.encoder("tiny-dinov2", prefix: "")
    let expected = try VisionFixtures.open("vision/expected.safetensors")
    let images = try ["dinov2", "dinov2.interpolated"].map { try PixelTensor.load(from: expected, tensor: $0 + ".pixels") }
    var walker = try VisionBlockActivations(encoder: encoder, prefix: "", images: images)
    let (block, batch) = try #require(try walker.next())
    // A target the block does not reach, so the loss and its gradient are far from zero.
    var generator = SeededGenerator(seed: 11)
    let target = zip(batch.target, Check.random(batch.target.count, &generator, scale: 0.3)).map { $0 + Float($1) }
    let perturbedBatch = BlockBatch(input: batch.input, target: target, lengths: batch.lengths)
    let (loss, gradients) = try block.reconstruction(perturbedBatch, replacing: try block.linearShapes.keys.reduce(into: [:]) {
      $0[$1] = try block.linearWeight(named: $1)
    })
    #expect(gradients.count == 6)
    let graph = block.graph.converted(to: Double.self)
    let input = batch.input.map { Double($0) }
    let targets = target.map { Double($0) }
    func meanSquare(_ replacing: [VisionLinearSlot: [Double]]) throws -> Double {
      let out = try graph.forward(input, lengths: batch.lengths, replacing: replacing, keepCache: false).output
      return zip(out, targets).reduce(0) { $0 + ($1.0 - $1.1) * ($1.0 - $1.1) } / Double(out.count)
    }
    #expect(abs(Double(loss) - (try meanSquare([:]))) < 1e-5 * max(1, Double(loss)))
    for (slot, name) in block.names {
      let weight = try #require(graph.weights[slot])
      // A sample of entries keeps the test quick.
      let indices = Array(stride(from: 0, to: weight.count, by: 37))
      let numeric = try Check.numerical(weight, indices: indices, step: 1e-4) { try meanSquare([slot: $0]) }
      let analytic = try #require(gradients[name]).map { Double($0) }
      #expect(Check.relativeError(analytic: analytic, numeric: numeric) < 1e-3, "\(name)")
    }
  }

  @Test func reconstructionRejectsMisshapenTargets() throws {
    let encoder = try Self.encoder("tiny-clip", prefix: "vision_model.")
    let block = try encoder.block(at: 0, prefix: "vision_model.")
    let input = [Float](repeating: 0.1, count: 2 * block.width)
    #expect(throws: TrainingError.self) {
      try block.reconstruction(BlockBatch(input: input, target: [0], lengths: [2]), replacing: [:])
    }
    #expect(throws: TrainingError.self) {
      try block.reconstruction(BlockBatch(input: input, target: input, lengths: [2]), replacing: ["nope": []])
    }
  }
}
