import Foundation
import QCompute
import QFormats
import Testing

@testable import QEngine

/// The collector's Gram matrices against activations recomputed here from the checkpoint with a
/// plain Double transcription of a Llama block, on Fixtures/tiny-chat.
@Suite struct CalibrationCollectorTests {
  static let folder = LLMFixtures.root.appending(path: "tiny-chat")

  static func load() throws -> (DecoderModel, SafetensorsFile, BPETokenizer, DecoderConfiguration) {
    let source = try SafetensorsFile(path: folder.appending(path: "model.safetensors").path)
    let config = try LLMFixtures.config("tiny-chat/config.json")
    let model = try DecoderModel(source: source, config: config)
    let tokenizer = try BPETokenizer(folder: folder)
    return (model, source, tokenizer, model.configuration)
  }

  static func sampleText() throws -> String {
    try String(contentsOf: LLMFixtures.root.appending(path: "tiny-chat.sample.txt"), encoding: .utf8)
  }

  /// The four linear inputs and the output of one block, in Double, written from the formulas.
  struct ReferenceBlock {
    var inputs: [LinearInput: [[Double]]] = [:]
    var output: [[Double]] = []
  }

  static func referenceBlock(
    _ x: [[Double]], block: Int, source: SafetensorsFile, c: DecoderConfiguration
  ) throws -> ReferenceBlock {
    let p = "model.layers.\(block)."
    func weight(_ name: String) throws -> [[Double]] {
      let info = try #require(source.info(named: p + name))
      let values = try source.floats(of: p + name).map(Double.init)
      return (0..<info.shape[0]).map { Array(values[($0 * info.shape[1])..<(($0 + 1) * info.shape[1])]) }
    }
    func vector(_ name: String) throws -> [Double] { try source.floats(of: p + name).map(Double.init) }
    func rms(_ rows: [[Double]], _ w: [Double]) -> [[Double]] {
      rows.map { row in
        let inverse = 1 / (row.map { $0 * $0 }.reduce(0, +) / Double(row.count) + Double(c.normEpsilon)).squareRoot()
        return zip(row, w).map { $0 * inverse * $1 }
      }
    }
    func linear(_ rows: [[Double]], _ w: [[Double]]) -> [[Double]] {
      rows.map { row in w.map { zip($0, row).map(*).reduce(0, +) } }
    }
    let d = c.headDimension
    let half = d / 2
    func rope(_ rows: [[Double]], heads: Int) -> [[Double]] {
      rows.enumerated().map { position, row in
        var out = row
        for head in 0..<heads {
          for i in 0..<half {
            let angle = Double(position) * pow(Double(c.ropeTheta), -2 * Double(i) / Double(d))
            let a = row[head * d + i]
            let b = row[head * d + half + i]
            out[head * d + i] = a * cos(angle) - b * sin(angle)
            out[head * d + half + i] = b * cos(angle) + a * sin(angle)
          }
        }
        return out
      }
    }
    var result = ReferenceBlock()
    let normed = rms(x, try vector("input_layernorm.weight"))
    result.inputs[.attentionInput] = normed
    let q = rope(linear(normed, try weight("self_attn.q_proj.weight")), heads: c.headCount)
    let k = rope(linear(normed, try weight("self_attn.k_proj.weight")), heads: c.keyValueHeadCount)
    let v = linear(normed, try weight("self_attn.v_proj.weight"))
    let group = c.headCount / c.keyValueHeadCount
    var attention = [[Double]](repeating: [Double](repeating: 0, count: c.headCount * d), count: x.count)
    for head in 0..<c.headCount {
      let kv = head / group
      for t in 0..<x.count {
        var scores = [Double](repeating: 0, count: t + 1)
        for s in 0...t {
          var dot = 0.0
          for i in 0..<d { dot += q[t][head * d + i] * k[s][kv * d + i] }
          scores[s] = dot / Double(d).squareRoot()
        }
        let largest = scores.max() ?? 0
        let weights = scores.map { exp($0 - largest) }
        let total = weights.reduce(0, +)
        for i in 0..<d {
          var sum = 0.0
          for s in 0...t { sum += weights[s] * v[s][kv * d + i] }
          attention[t][head * d + i] = sum / total
        }
      }
    }
    result.inputs[.attentionOutput] = attention
    let mid = zip(x, linear(attention, try weight("self_attn.o_proj.weight"))).map { zip($0, $1).map(+) }
    let mlpIn = rms(mid, try vector("post_attention_layernorm.weight"))
    result.inputs[.mlpInput] = mlpIn
    let gate = linear(mlpIn, try weight("mlp.gate_proj.weight"))
    let up = linear(mlpIn, try weight("mlp.up_proj.weight"))
    let hidden = zip(gate, up).map { zip($0, $1).map { g, u in g / (1 + exp(-g)) * u } }
    result.inputs[.mlpHidden] = hidden
    result.output = zip(mid, linear(hidden, try weight("mlp.down_proj.weight"))).map { zip($0, $1).map(+) }
    return result
  }

  static func gram(_ rows: [[Double]]) -> [Double] {
    let width = rows.first?.count ?? 0
    var out = [Double](repeating: 0, count: width * width)
    for row in rows {
      for i in 0..<width { for j in 0..<width { out[i * width + j] += row[i] * row[j] } }
    }
    return out
  }

  static func relativeDifference(_ a: [Double], _ b: [Double]) -> Double {
    let difference = zip(a, b).map { ($0 - $1) * ($0 - $1) }.reduce(0, +).squareRoot()
    let scale = b.map { $0 * $0 }.reduce(0, +).squareRoot()
    return difference / max(scale, .leastNormalMagnitude)
  }

  @Test func gramsMatchActivationsRecomputedFromTheCheckpoint() throws {
    let (model, source, tokenizer, c) = try Self.load()
    let collector = CalibrationCollector(model: model, tokenizer: tokenizer)
    let windows = try collector.windows(of: TextDataset(documents: [try Self.sampleText()]), context: 17, count: 3)
    #expect(windows.count == 3)
    #expect(windows.allSatisfy { $0.count == 17 })
    var calls = 0
    let grams = try collector.collectGrams(windows: windows) { done, total in
      calls += 1
      #expect(done == calls && total == 3)
    }
    #expect(calls == 3)
    #expect(grams.count == 7 * c.layerCount)

    var expected: [String: [Double]] = [:]
    for window in windows {
      // Block inputs from the engine's own hidden states, checked against the reference block's output.
      let states = try model.hiddenStates(tokens: window)
      for block in 0..<c.layerCount {
        let input = states[block]
        let x = (0..<window.count).map { r in (0..<c.hiddenSize).map { Double(input[r, $0]) } }
        let reference = try Self.referenceBlock(x, block: block, source: source, c: c)
        let next = states[block + 1].elements.map(Double.init)
        #expect(Self.relativeDifference(next, reference.output.flatMap { $0 }) < 1e-4)
        for slot in LinearSlot.allCases {
          let name = slot.tensorName(block: block)
          let g = Self.gram(try #require(reference.inputs[slot.input]))
          expected[name] = zip(expected[name] ?? [Double](repeating: 0, count: g.count), g).map(+)
        }
      }
    }
    for (name, values) in expected {
      let ours = try #require(grams[name], "\(name)")
      #expect(ours.rows * ours.columns == values.count)
      #expect(Self.relativeDifference(ours.elements, values) < 1e-4, "\(name)")
    }
    // Shared inputs give equal matrices.
    #expect(grams["model.layers.0.self_attn.q_proj.weight"] == grams["model.layers.0.self_attn.v_proj.weight"])
    #expect(grams["model.layers.1.mlp.gate_proj.weight"] == grams["model.layers.1.mlp.up_proj.weight"])
  }

  /// Input energies are the Gram matrices' diagonals, for every stored linear, and count every
  /// window.
  @Test func inputEnergiesAreTheGramDiagonals() throws {
    let (model, _, tokenizer, _) = try Self.load()
    let collector = CalibrationCollector(model: model, tokenizer: tokenizer)
    let windows = try collector.windows(of: TextDataset(documents: [try Self.sampleText()]), context: 13, count: 3)
    let grams = try collector.collectGrams(windows: windows)
    var calls = 0
    let energies = try collector.collectInputEnergies(windows: windows) { done, total in
      calls += 1
      #expect(done == calls && total == 3)
    }
    #expect(calls == 3)
    #expect(Set(energies.keys) == Set(grams.keys))
    for (name, gram) in grams {
      let energy = try #require(energies[name])
      let diagonal = (0..<gram.rows).map { gram[$0, $0] }
      #expect(energy.count == diagonal.count)
      #expect(Self.relativeDifference(energy, diagonal) < 1e-5, "\(name)")
    }
    // One window fewer is less energy in every column of the first input.
    let fewer = try collector.collectInputEnergies(windows: Array(windows.prefix(2)))
    let name = "model.layers.0.self_attn.q_proj.weight"
    let all = try #require(energies[name])
    #expect(zip(try #require(fewer[name]), all).allSatisfy { $0 < $1 })
  }

  @Test func sequentialSchemeWithoutReplacementMatchesTheFullPrecisionGrams() throws {
    let (model, _, tokenizer, c) = try Self.load()
    let collector = CalibrationCollector(model: model, tokenizer: tokenizer, prefix: "p.")
    let windows = try collector.windows(of: TextDataset(documents: [try Self.sampleText()]), context: 9, count: 2)
    let full = try collector.collectGrams(windows: windows)
    try collector.start(windows: windows)
    for block in 0..<c.layerCount {
      let grams = try collector.grams(of: Set(LinearInput.allCases))
      for slot in LinearSlot.allCases {
        let ours = try #require(grams[slot.input])
        let theirs = try #require(full[slot.tensorName(block: block, prefix: "p.")])
        #expect(ours == theirs)
      }
      // Block outputs are the next hidden states.
      try collector.advance()
      for (index, window) in windows.enumerated() {
        let states = try model.hiddenStates(tokens: window)
        #expect(collector.currentInputs[index] == states[block + 1].elements)
      }
    }
    #expect(throws: DecoderError.self) { try collector.advance() }
  }

  /// The head's Gram matrix is XᵀX of the final norm of the last block's outputs, here in
  /// Double from the model's hidden states and the stored norm weight; it exists only once
  /// every block has run.
  @Test func headGramIsTheFinalNormsGram() throws {
    let (model, source, tokenizer, c) = try Self.load()
    let collector = CalibrationCollector(model: model, tokenizer: tokenizer)
    let windows = try collector.windows(of: TextDataset(documents: [try Self.sampleText()]), context: 11, count: 2)
    try collector.start(windows: windows)
    #expect(throws: DecoderError.self) { try collector.headGram() }
    for _ in 0..<c.layerCount { try collector.advance() }
    let gram = try collector.headGram()
    let norm = try source.floats(of: "model.norm.weight").map(Double.init)
    let width = c.hiddenSize
    var expected = [Double](repeating: 0, count: width * width)
    for window in windows {
      let last = try #require(try model.hiddenStates(tokens: window).last).elements.map(Double.init)
      for token in 0..<window.count {
        let row = Array(last[(token * width)..<((token + 1) * width)])
        let inverse = 1 / (row.map { $0 * $0 }.reduce(0, +) / Double(width) + Double(c.normEpsilon)).squareRoot()
        let normed = zip(row, norm).map { $0 * inverse * $1 }
        for i in 0..<width { for j in 0..<width { expected[i * width + j] += normed[i] * normed[j] } }
      }
    }
    let got = (0..<width).flatMap { i in (0..<width).map { gram[i, $0] } }
    #expect(Self.relativeDifference(got, expected) < 1e-5)
    #expect(collector.headTensorName == "model.embed_tokens.weight")
    let head = collector.headWeights()
    #expect(head.rows == c.vocabularySize && head.columns == width)
    #expect(head.values == (try source.floats(of: "model.embed_tokens.weight")))
  }

  @Test func replacingAWeightChangesLaterInputsOnly() throws {
    let (model, _, tokenizer, _) = try Self.load()
    let collector = CalibrationCollector(model: model, tokenizer: tokenizer)
    let windows = try collector.windows(of: TextDataset(documents: [try Self.sampleText()]), context: 9, count: 1)
    try collector.start(windows: windows)
    let before = try collector.grams(of: Set(LinearInput.allCases))
    let query = try collector.weights(of: .query)
    try collector.replace(.query, with: query.values.map { $0 * 0.5 })
    let after = try collector.grams(of: Set(LinearInput.allCases))
    #expect(after[.attentionInput] == before[.attentionInput])
    #expect(after[.attentionOutput] != before[.attentionOutput])
    #expect(throws: DecoderError.self) { try collector.replace(.down, with: [1, 2, 3]) }
  }

  @Test func windowsNeedATokenizerAndEnoughText() throws {
    let (model, _, tokenizer, _) = try Self.load()
    #expect(throws: DecoderError.self) {
      try CalibrationCollector(model: model).windows(of: TextDataset(documents: ["a b c"]), context: 4)
    }
    #expect(throws: DecoderError.self) {
      try CalibrationCollector(model: model, tokenizer: tokenizer).windows(
        of: TextDataset(documents: ["a"]), context: 64)
    }
  }

  @Test func overlayReplacesOnlyTheNamedTensors() throws {
    let (_, source, _, c) = try Self.load()
    let name = "model.layers.0.mlp.down_proj.weight"
    let zeros = [Float](repeating: 0, count: c.hiddenSize * c.intermediateSize)
    let overlay = try OverlayTensorSource(base: source, replacements: [name: zeros])
    #expect(try overlay.floats(of: name) == zeros)
    #expect(try overlay.floats(of: "model.norm.weight") == source.floats(of: "model.norm.weight"))
    #expect(overlay.tensors.count == source.tensors.count)
    #expect(throws: EngineError.self) { try OverlayTensorSource(base: source, replacements: ["nope": [1]]) }
    #expect(throws: EngineError.self) { try OverlayTensorSource(base: source, replacements: [name: [1]]) }
  }

  /// On Phi-3 the Gram matrices are keyed by the fused weights the checkpoint stores, and the
  /// `qkv_proj` one is block 0's input RMS-normed, recomputed here in Double from the
  /// checkpoint's tensors: Float SYRK over a few dozen rows, 1e-4 of the largest entry.
  @Test func phi3GramsAreKeyedByTheFusedWeights() throws {
    let testCase = try #require(FamilyFixtures.cases.first { $0.name == "phi3" })
    let model = try FamilyFixtures.model(testCase)
    let tokens = testCase.tokens
    let grams = try CalibrationCollector(model: model).collectGrams(windows: [tokens])
    let modules = ["self_attn.qkv_proj", "self_attn.o_proj", "mlp.gate_up_proj", "mlp.down_proj"]
    #expect(Set(grams.keys) == Set((0..<2).flatMap { block in modules.map { "model.layers.\(block).\($0).weight" } }))
    let source = try FamilyFixtures.source(testCase)
    let hidden = model.configuration.hiddenSize
    let embedding = try source.floats(of: "model.embed_tokens.weight").map(Double.init)
    let norm = try source.floats(of: "model.layers.0.input_layernorm.weight").map(Double.init)
    let rows: [[Double]] = tokens.map { token in
      let x = Array(embedding[(token * hidden)..<((token + 1) * hidden)])
      let inverse = 1 / (x.reduce(0) { $0 + $1 * $1 } / Double(hidden) + Double(model.configuration.normEpsilon)).squareRoot()
      return zip(x, norm).map { $0 * inverse * $1 }
    }
    let gram = try #require(grams["model.layers.0.self_attn.qkv_proj.weight"])
    var expected = [Double](repeating: 0, count: hidden * hidden)
    for row in rows {
      for i in 0..<hidden { for j in 0..<hidden { expected[i * hidden + j] += row[i] * row[j] } }
    }
    let largest = expected.map(abs).max() ?? 1
    #expect(zip(gram.elements, expected).allSatisfy { abs($0 - $1) <= 1e-4 * largest })
  }
}
