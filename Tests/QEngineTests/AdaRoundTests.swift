import Foundation
import QCompute
import QFormats
import Testing

@testable import QEngine

/// Block-wise AdaRound on a tiny-chat decoder layer: it lowers the block's reconstruction error
/// below round-to-nearest on the same grid, and its rounding ends hard.
@Suite struct AdaRoundTests {
  enum Kind { case clip, affine }

  /// A grid from the array form of the clip-search or affine quantizer.
  static func grid(
    _ kind: Kind, _ weights: [Float], rows: Int, columns: Int, bits: Int, groupSize: GroupSize
  ) throws -> QuantizedMatrix {
    try weights.withUnsafeBufferPointer { buffer in
      switch kind {
      case .clip: try ClipSearchQuantizer.quantize(buffer, rows: rows, columns: columns, bits: bits, groupSize: groupSize)
      case .affine: try AffineQuantizer.quantize(buffer, rows: rows, columns: columns, bits: bits, groupSize: groupSize)
      }
    }
  }

  /// Block 1 of tiny-chat, with windows of the sample text as batches: the block's inputs from
  /// the full-precision model and its full-precision outputs as targets.
  static func tinyBlock() throws -> (block: DecoderBlock, batches: [BlockBatch], heldOut: BlockBatch) {
    let folder = LLMFixtures.root.appending(path: "tiny-chat")
    let source = try SafetensorsFile(path: folder.appending(path: "model.safetensors").path)
    let config = try ModelConfig(data: try Data(contentsOf: folder.appending(path: "config.json")), location: folder.path)
    let model = try DecoderModel(source: source, config: config)
    let tokenizer = try BPETokenizer(folder: folder)
    let text = try String(contentsOf: LLMFixtures.root.appending(path: "tiny-chat.sample.txt"), encoding: .utf8)
    let tokens = tokenizer.encode(text)
    try #require(tokens.count >= 5 * 24)
    var batches: [BlockBatch] = []
    for start in stride(from: 0, to: 5 * 24, by: 24) {
      let window = Array(tokens[start..<(start + 24)])
      var x = try model.embeddings(tokens: window)
      try model.runBlock(model.layers[0], block: 0, x: &x, count: window.count)
      let input = x
      try model.runBlock(model.layers[1], block: 1, x: &x, count: window.count)
      batches.append(BlockBatch(input: input, target: x, lengths: [window.count]))
    }
    let heldOut = batches.removeLast()
    return (try DecoderBlock(model: model, block: 1), batches, heldOut)
  }

  static func grids(_ block: DecoderBlock, bits: Int) throws -> [String: QuantizedMatrix] {
    var grids: [String: QuantizedMatrix] = [:]
    for (name, shape) in block.linearShapes {
      grids[name] = try Self.grid(.clip, try block.linearWeight(named: name), rows: shape[0], columns: shape[1], bits: bits, groupSize: .elements(32))
    }
    return grids
  }

  static func loss(_ block: DecoderBlock, _ batches: [BlockBatch], weights: [String: [Float]]) throws -> Double {
    try batches.reduce(0) { $0 + Double(try block.reconstruction($1, replacing: weights).loss) } / Double(batches.count)
  }

  @Test(arguments: [2, 3])
  func lowersTheBlockErrorBelowNearestRounding(bits: Int) throws {
    let (block, batches, heldOut) = try Self.tinyBlock()
    let grids = try Self.grids(block, bits: bits)
    let options = AdaRound.Options(iterations: 300, learningRate: 0.1)
    var steps = 0
    let layers = try AdaRound.optimizedLayers(
      block: block, batches: batches, grids: grids, options: options, progress: { _ in steps += 1 })
    #expect(steps == 300)
    let nearest = try Self.loss(block, batches, weights: grids.mapValues { $0.dequantize() })
    let learned = layers.mapValues { $0.quantized() }
    let adaround = try Self.loss(block, batches, weights: learned.mapValues { $0.dequantize() })
    #expect(adaround < 0.5 * nearest, "AdaRound \(adaround), nearest \(nearest)")
    // The codes moved, on the grid they started on.
    for (name, matrix) in learned {
      let grid = try #require(grids[name])
      #expect(matrix.scales == grid.scales && matrix.offsets == grid.offsets && matrix.method == grid.method)
    }
    #expect(learned.contains { $0.value.codes != grids[$0.key]?.codes })
    // With β at its end the regulariser has pushed h(V) to 0 or 1 (all but a few weights held
    // near 0.5 by the reconstruction gradient in so short a run), and there the hard weights
    // are the soft ones exactly.
    let fractions = layers.values.flatMap(\.roundingFractions)
    let undecided = fractions.filter { $0 != 0 && $0 != 1 }.count
    #expect(undecided * 1000 < fractions.count, "\(undecided) of \(fractions.count) h(V) are strictly between 0 and 1")
    for (name, layer) in layers {
      let hard = try #require(learned[name]).dequantize()
      for (index, (soft, fraction)) in zip(layer.softWeights(), layer.roundingFractions).enumerated()
      where fraction == 0 || fraction == 1 {
        #expect(soft == hard[index], "\(name)[\(index)]")
      }
    }
    // Not fitted to the training windows alone.
    let heldOutNearest = try Self.loss(block, [heldOut], weights: grids.mapValues { $0.dequantize() })
    let heldOutAdaRound = try Self.loss(block, [heldOut], weights: learned.mapValues { $0.dequantize() })
    #expect(heldOutAdaRound < heldOutNearest, "held out: AdaRound \(heldOutAdaRound), nearest \(heldOutNearest)")
  }

  @Test func betaFollowsTheSchedule() {
    let options = AdaRound.Options(iterations: 100, warmup: 0.2)
    #expect(options.beta(at: 0) == (20, false))
    #expect(options.beta(at: 19) == (20, false))
    #expect(options.beta(at: 20) == (20, true))
    #expect(options.beta(at: 60) == (11, true))
    #expect(options.beta(at: 100).beta == 2)
  }

  @Test func rejectsGridsTheBlockDoesNotHave() throws {
    let (block, batches, _) = try Self.tinyBlock()
    let grid = try Self.grid(.clip, [Float](repeating: 1, count: 64), rows: 1, columns: 64, bits: 2, groupSize: .elements(32))
    #expect(throws: TrainingError.self) {
      try AdaRound.optimize(block: block, batches: batches, grids: ["model.layers.1.mlp.up_proj.weight": grid])
    }
    #expect(throws: TrainingError.self) { try AdaRound.optimize(block: block, batches: [], grids: [:]) }
  }
}
