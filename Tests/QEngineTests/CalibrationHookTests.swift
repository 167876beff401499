import Foundation
import QCompute
import QFormats
import Testing

@testable import QEngine

/// Calibration runs through the decoder's own forward pass (its linear-input hook) instead of
/// a copy of the block's attention code; these tests hold the Gram matrices and block outputs
/// bit for bit to that copy, kept here as it was before (`referenceRunBlock`).
@Suite struct CalibrationHookTests {
  struct Model: Sendable, CustomTestStringConvertible {
    var folder: String
    var config: String
    var testDescription: String { folder }
  }

  /// Llama with grouped-query attention, and Qwen2 with q/k/v biases.
  static let models = [
    Model(folder: "tiny-chat", config: "tiny-chat/config.json"),
    Model(folder: "llm/tiny-qwen2", config: "llm/tiny-qwen2/config.json"),
  ]

  static func load(_ model: Model) throws -> (DecoderModel, BPETokenizer?) {
    let folder = LLMFixtures.root.appending(path: model.folder)
    let source = try SafetensorsFile(path: folder.appending(path: "model.safetensors").path)
    let decoder = try DecoderModel(source: source, config: try LLMFixtures.config(model.config))
    let tokenizer =
      FileManager.default.fileExists(atPath: folder.appending(path: "tokenizer.json").path)
      ? try BPETokenizer(folder: folder) : nil
    return (decoder, tokenizer)
  }

  static func windows(_ decoder: DecoderModel, count: Int, length: Int) -> [[Int]] {
    let vocabulary = decoder.configuration.vocabularySize
    return (0..<count).map { w in (0..<length).map { (w * 131 + $0 * 37 + 11) % vocabulary } }
  }

  /// `collectGrams` as it was: embeddings, then the copied block, block by block.
  static func referenceGrams(_ decoder: DecoderModel, windows: [[Int]]) throws -> [String: Matrix<
    Double
  >] {
    let collector = CalibrationCollector(model: decoder)
    var accumulators = decoder.layers.indices.map { _ in
      collector.inputAccumulators(inputs: Set(LinearInput.allCases))
    }
    for window in windows {
      var x = try decoder.embeddings(tokens: window)
      for (block, layer) in decoder.layers.enumerated() {
        try decoder.referenceRunBlock(layer, x: &x, count: window.count) { input, values in
          try accumulators[block][input]?.add(values, count: window.count)
        }
      }
    }
    var result: [String: Matrix<Double>] = [:]
    for block in decoder.layers.indices {
      for slot in LinearSlot.allCases {
        result[slot.tensorName(block: block)] = try accumulators[block][slot.input]?.matrix()
      }
    }
    return result
  }

  @Test(arguments: models)
  func gramsAreBitIdenticalToTheCopiedBlock(model: Model) throws {
    let (decoder, _) = try Self.load(model)
    // 1, 7, 8 and 17 positions: one row, a partial and a full SIMD width, several.
    for length in [1, 7, 8, 17] {
      let windows = Self.windows(decoder, count: 2, length: length)
      let ours = try CalibrationCollector(model: decoder).collectGrams(windows: windows)
      let reference = try Self.referenceGrams(decoder, windows: windows)
      #expect(ours.count == 7 * decoder.configuration.layerCount)
      #expect(Set(ours.keys) == Set(reference.keys))
      for (name, matrix) in reference {
        let found = try #require(ours[name], "\(name)")
        #expect(found.elements == matrix.elements, "\(name), \(length) positions")
        #expect(found.elements.contains { $0 != 0 }, "\(name)")
      }
    }
  }

  @Test(arguments: models)
  func sequentialSchemeIsBitIdenticalToTheCopiedBlock(model: Model) throws {
    let (decoder, _) = try Self.load(model)
    let windows = Self.windows(decoder, count: 2, length: 9)
    let collector = CalibrationCollector(model: decoder)
    try collector.start(windows: windows)
    var inputs = try windows.map { try decoder.embeddings(tokens: $0) }
    for (block, layer) in decoder.layers.enumerated() {
      // A replaced weight, as GPTQ leaves it, must flow through both paths alike.
      let query = try collector.weights(of: .query)
      try collector.replace(.query, with: query.values.map { ($0 * 64).rounded() / 64 })
      var replaced = layer
      replaced[.query] = .dense(
        rows: query.rows, columns: query.columns,
        values: query.values.map { ($0 * 64).rounded() / 64 })
      let ours = try collector.grams(of: Set(LinearInput.allCases))
      var expected = collector.inputAccumulators(inputs: Set(LinearInput.allCases))
      for index in inputs.indices {
        var x = inputs[index]
        try decoder.referenceRunBlock(replaced, x: &x, count: windows[index].count) {
          input, values in
          try expected[input]?.add(values, count: windows[index].count)
        }
        inputs[index] = x
      }
      for input in LinearInput.allCases {
        #expect(
          try ours[input]?.elements == expected[input]?.matrix().elements, "block \(block) \(input)"
        )
      }
      try collector.advance()
      #expect(collector.currentInputs == inputs, "block \(block) output")
    }
  }

  @Test(arguments: models)
  func oneForwardGivesTheLogitsAndHiddenStatesOfTwo(model: Model) throws {
    let (decoder, _) = try Self.load(model)
    let tokens = Self.windows(decoder, count: 1, length: 12)[0]
    var states: [[Float]] = []
    let logits = try decoder.logits(tokens: tokens) { _, values in states.append(Array(values)) }
    #expect(logits == (try decoder.logits(tokens: tokens)))
    #expect(states == (try decoder.hiddenStates(tokens: tokens)).map(\.elements))
    #expect(states.count == decoder.configuration.layerCount + 1)
    // Fewer rows of logits: the same first rows, hidden states of every position. The body runs
    // on all 12 positions either way, so the final hidden states are the same bits; only the
    // head's product differs, in its row count (11 against 12), and OpenBLAS may sum each dot
    // product of length H in another order for another shape. Reordering a float sum of H terms
    // moves it by at most 2·H·u·Σ|h_k·w_k| (u = 2^-24), bounded here by 2·H·u·‖h‖₁·max|w|.
    var fewer = 0
    let first = try decoder.logits(tokens: tokens, rows: 11) { _, values in fewer = values.count }
    let c = decoder.configuration
    let lastState = try #require(states.last)
    var normed = [Float](repeating: 0, count: lastState.count)
    DecoderModel.rmsNorm(lastState, weight: decoder.finalNorm, epsilon: c.normEpsilon, rows: tokens.count, into: &normed)
    let folder = LLMFixtures.root.appending(path: model.folder)
    let source = try SafetensorsFile(path: folder.appending(path: "model.safetensors").path)
    let headName = source.info(named: "lm_head.weight") != nil ? "lm_head.weight" : "model.embed_tokens.weight"
    let maxWeight = try source.floats(of: headName).reduce(Float(0)) { max($0, abs($1)) }
    let unit = Float(1) / Float(1 << 24)
    #expect(first.rows == 11)
    for row in 0..<11 {
      let l1 = normed[(row * c.hiddenSize)..<((row + 1) * c.hiddenSize)].reduce(Float(0)) { $0 + abs($1) }
      let bound = 2 * Float(c.hiddenSize) * unit * l1 * maxWeight
      for column in 0..<c.vocabularySize {
        let index = row * c.vocabularySize + column
        #expect(abs(first.elements[index] - logits.elements[index]) <= bound, "row \(row), column \(column)")
      }
    }
    #expect(fewer == 12 * decoder.configuration.hiddenSize)
    #expect(try decoder.logits(tokens: tokens, rows: 0) { _, _ in }.rows == 0)
    #expect(throws: DecoderError.self) { try decoder.logits(tokens: tokens, rows: 13) { _, _ in } }
  }

  @Test func replacedBlocksNeedNoCache() throws {
    let (decoder, _) = try Self.load(Self.models[0])
    let cache = KeyValueCache(model: decoder, capacity: 4)
    let x = try decoder.embeddings(tokens: [1, 2])
    #expect(throws: DecoderError.self) {
      try decoder.forward(embeddings: x, cache: cache, blocks: [decoder.layers[0]])
    }
  }
}

extension DecoderModel {
  /// The calibration block as it was before it ran through `forward`: the reference the hook
  /// must reproduce bit for bit.
  func referenceRunBlock(
    _ layer: DecoderLayer, x: inout [Float], count: Int,
    observe: ((LinearInput, UnsafeBufferPointer<Float>) throws -> Void)? = nil
  ) throws {
    let c = configuration
    let hidden = c.hiddenSize
    let headDimension = c.headDimension
    let queryWidth = c.headCount * headDimension
    let keyWidth = c.keyValueHeadCount * headDimension
    let groupSize = c.headCount / c.keyValueHeadCount
    let scale = 1 / Float(headDimension).squareRoot()
    let (cosines, sines) = RotaryEmbedding(headDimension: headDimension, theta: c.ropeTheta, scaling: c.ropeScaling).tables(positions: 0..<count, totalLength: count)

    var normed = [Float](repeating: 0, count: count * hidden)
    var queries = [Float](repeating: 0, count: count * queryWidth)
    var keys = [Float](repeating: 0, count: count * keyWidth)
    var values = [Float](repeating: 0, count: count * keyWidth)
    Self.rmsNorm(x, weight: layer.inputNorm, epsilon: c.normEpsilon, rows: count, into: &normed)
    try normed.withUnsafeBufferPointer { try observe?(.attentionInput, $0) }
    try Self.apply(layer.query, normed, tokens: count, into: &queries, bias: layer.queryBias)
    try Self.apply(layer.key, normed, tokens: count, into: &keys, bias: layer.keyBias)
    try Self.apply(layer.value, normed, tokens: count, into: &values, bias: layer.valueBias)
    Self.rotate(
      &queries, heads: c.headCount, headDimension: headDimension, rows: count, cos: cosines,
      sin: sines)
    Self.rotate(
      &keys, heads: c.keyValueHeadCount, headDimension: headDimension, rows: count, cos: cosines,
      sin: sines)

    // One head at a time: gather its queries, keys and values into contiguous rows.
    var headQueries = [Float](repeating: 0, count: count * headDimension)
    var headKeys = headQueries
    var headValues = headQueries
    var headOutput = headQueries
    var scores = [Float](repeating: 0, count: count * count)
    var attention = [Float](repeating: 0, count: count * queryWidth)
    func gather(_ source: [Float], width: Int, head: Int, into target: inout [Float]) {
      for row in 0..<count {
        for index in 0..<headDimension {
          target[row &* headDimension &+ index] =
            source[row &* width &+ head &* headDimension &+ index]
        }
      }
    }
    var gatheredKeyHead = -1
    for head in 0..<c.headCount {
      let kvHead = head / groupSize
      if kvHead != gatheredKeyHead {
        gather(keys, width: keyWidth, head: kvHead, into: &headKeys)
        gather(values, width: keyWidth, head: kvHead, into: &headValues)
        gatheredKeyHead = kvHead
      }
      gather(queries, width: queryWidth, head: head, into: &headQueries)
      try headQueries.withUnsafeBufferPointer { q in
        try headKeys.withUnsafeBufferPointer { k in
          try headValues.withUnsafeBufferPointer { v in
            try scores.withUnsafeMutableBufferPointer { s in
              try Linalg.gemm(
                q, rows: count, columns: headDimension, k, rows: count, columns: headDimension,
                transposeB: true, into: s, alpha: scale)
              Self.causalSoftmax(s, rows: count, columns: count, past: 0)
              try headOutput.withUnsafeMutableBufferPointer { o in
                try Linalg.gemm(
                  UnsafeBufferPointer(s), rows: count, columns: count, v, rows: count,
                  columns: headDimension, into: o)
              }
            }
          }
        }
      }
      for row in 0..<count {
        for index in 0..<headDimension {
          attention[row &* queryWidth &+ head &* headDimension &+ index] =
            headOutput[row &* headDimension &+ index]
        }
      }
    }
    try attention.withUnsafeBufferPointer { try observe?(.attentionOutput, $0) }

    var projected = [Float](repeating: 0, count: count * hidden)
    try Self.apply(layer.output, attention, tokens: count, into: &projected, bias: nil)
    Self.add(projected, to: &x)
    Self.rmsNorm(
      x, weight: layer.postAttentionNorm, epsilon: c.normEpsilon, rows: count, into: &normed)
    try normed.withUnsafeBufferPointer { try observe?(.mlpInput, $0) }
    var gate = [Float](repeating: 0, count: count * c.intermediateSize)
    var up = gate
    try Self.apply(layer.gate, normed, tokens: count, into: &gate, bias: nil)
    try Self.apply(layer.up, normed, tokens: count, into: &up, bias: nil)
    Self.swiGLU(&gate, up)
    try gate.withUnsafeBufferPointer { try observe?(.mlpHidden, $0) }
    try Self.apply(layer.down, gate, tokens: count, into: &projected, bias: nil)
    Self.add(projected, to: &x)
  }
}
