import Foundation
import QCompute

/// Keys and values of every layer for the positions seen so far, for incremental decoding.
///
/// Per layer and key-value head, rows of `headDimension` floats, one per position, so the
/// first `length` rows of a head are contiguous and go to BLAS as they are.
public final class KeyValueCache {
  public let capacity: Int
  public private(set) var length = 0
  var keys: [[Float]]
  var values: [[Float]]

  /// An empty cache for up to `capacity` positions of `model`.
  public init(model: DecoderModel, capacity: Int) {
    let c = model.configuration
    self.capacity = capacity
    let size = c.keyValueHeadCount * capacity * c.headDimension
    keys = Array(repeating: [Float](repeating: 0, count: size), count: c.layerCount)
    values = keys
  }

  func advance(by count: Int) { length += count }
}

extension DecoderModel {
  /// Runs `tokens` after the positions in `cache` (or from position 0 with none) and returns the
  /// final normed hidden states, `[tokens.count, hiddenSize]` row-major.
  ///
  /// `observe` sees the embeddings (index 0) and each layer's output (index `i + 1`);
  /// `observeInputs` sees each layer's four distinct linear inputs before they are used.
  func forward(
    tokens: [Int], cache: KeyValueCache?,
    observe: ((Int, UnsafeBufferPointer<Float>) -> Void)? = nil,
    observeInputs: LinearInputObserver? = nil
  ) throws -> [Float] {
    guard !tokens.isEmpty else { throw DecoderError.invalidInput(operation: "forward", reason: "no tokens") }
    return try forward(
      embeddings: try embedRows(tokens), cache: cache, observe: observe, observeInputs: observeInputs)
  }

  /// `forward(tokens:)` from input embeddings `[rows, hiddenSize]` row-major instead of token ids.
  /// - Parameters:
  ///   - blocks: Run these layers instead of the model's (calibration's replaced weights); only
  ///     without a cache.
  ///   - firstLayer: The model's index of `blocks[0]`, whose attention settings apply.
  func forward(
    embeddings: [Float], cache: KeyValueCache?, blocks: [DecoderLayer]? = nil, firstLayer: Int = 0,
    observe: ((Int, UnsafeBufferPointer<Float>) -> Void)? = nil,
    observeInputs: LinearInputObserver? = nil
  ) throws -> [Float] {
    let c = configuration
    let count = embeddings.count / max(c.hiddenSize, 1)
    let hidden = c.hiddenSize
    let headDimension = c.headDimension
    let queryWidth = c.headCount * headDimension
    let keyWidth = c.keyValueHeadCount * headDimension
    let groupSize = c.headCount / c.keyValueHeadCount
    let past = cache?.length ?? 0
    let total = past + count
    guard count > 0, embeddings.count == count * hidden else {
      throw DecoderError.invalidInput(
        operation: "forward", reason: "\(embeddings.count) embedding values are not rows of \(hidden)")
    }
    if cache != nil, blocks != nil {
      throw DecoderError.invalidInput(operation: "forward", reason: "replaced blocks run without a cache")
    }
    if let cache, total > cache.capacity {
      throw DecoderError.invalidInput(
        operation: "forward", reason: "\(total) positions exceed the cache's \(cache.capacity)")
    }

    var x = embeddings
    x.withUnsafeBufferPointer { observe?(0, $0) }

    let architecture = c.architecture
    let offset = architecture.normWeightOffset
    // Rotary tables per distinct rope of the layers.
    var tables: [(rope: DecoderArchitecture.Rope, cos: [Float], sin: [Float])] = []
    func rotaryTables(_ rope: DecoderArchitecture.Rope) -> (cos: [Float], sin: [Float]) {
      if let found = tables.first(where: { $0.rope == rope }) { return (found.cos, found.sin) }
      let (cos, sin) = RotaryEmbedding(headDimension: headDimension, rope: rope)
        .tables(positions: past..<total, totalLength: total)
      tables.append((rope, cos, sin))
      return (cos, sin)
    }
    var normed = [Float](repeating: 0, count: count * hidden)
    var queries = [Float](repeating: 0, count: count * queryWidth)
    var keys = [Float](repeating: 0, count: count * keyWidth)
    var values = [Float](repeating: 0, count: count * keyWidth)
    var headQueries = [Float](repeating: 0, count: count * headDimension)
    var headOutput = [Float](repeating: 0, count: count * headDimension)
    var attention = [Float](repeating: 0, count: count * queryWidth)
    var scores = [Float](repeating: 0, count: count * total)
    var projected = [Float](repeating: 0, count: count * hidden)
    var gate = [Float](repeating: 0, count: count * c.intermediateSize)
    var up = [Float](repeating: 0, count: count * c.intermediateSize)
    // Without a cache, one layer's keys and values at a time.
    var scratchKeys = cache == nil ? [Float](repeating: 0, count: keyWidth * count) : []
    var scratchValues = scratchKeys
    let scale = c.attentionScale

    for (layerIndex, layer) in (blocks ?? layers).enumerated() {
      let settings = c.attention(layer: firstLayer + layerIndex)
      Self.rmsNorm(x, weight: layer.inputNorm, offset: offset, epsilon: c.normEpsilon, rows: count, into: &normed)
      try normed.withUnsafeBufferPointer { try observeInputs?(layerIndex, .attentionInput, $0) }
      try Self.applyQueryKeyValue(layer, normed, tokens: count, into: &queries, &keys, &values)
      if let norm = layer.queryNorm {
        Self.rmsNorm(queries, weight: norm, offset: offset, epsilon: c.normEpsilon, rows: count * c.headCount, into: &queries)
      }
      if let norm = layer.keyNorm {
        Self.rmsNorm(keys, weight: norm, offset: offset, epsilon: c.normEpsilon, rows: count * c.keyValueHeadCount, into: &keys)
      }
      if let rope = settings.rope {
        let (cosines, sines) = rotaryTables(rope)
        Self.rotate(&queries, heads: c.headCount, headDimension: headDimension, rows: count, cos: cosines, sin: sines)
        Self.rotate(&keys, heads: c.keyValueHeadCount, headDimension: headDimension, rows: count, cos: cosines, sin: sines)
      }

      // Store this step's keys and values head-major after the cached positions.
      let capacity = cache?.capacity ?? count
      func store(_ source: [Float], into target: inout [Float]) {
        source.withUnsafeBufferPointer { from in
          target.withUnsafeMutableBufferPointer { to in
            for head in 0..<c.keyValueHeadCount {
              for row in 0..<count {
                (to.baseAddress! + (head * capacity + past + row) * headDimension).update(
                  from: from.baseAddress! + row * keyWidth + head * headDimension, count: headDimension)
              }
            }
          }
        }
      }
      if let cache {
        store(keys, into: &cache.keys[layerIndex])
        store(values, into: &cache.values[layerIndex])
      } else {
        store(keys, into: &scratchKeys)
        store(values, into: &scratchValues)
      }

      func attend(keyStore: UnsafeBufferPointer<Float>, valueStore: UnsafeBufferPointer<Float>) throws {
        for head in 0..<c.headCount {
          let kvHead = head / groupSize
          let headKeys = UnsafeBufferPointer(
            rebasing: keyStore[(kvHead * capacity * headDimension)..<((kvHead * capacity + total) * headDimension)])
          let headValues = UnsafeBufferPointer(
            rebasing: valueStore[(kvHead * capacity * headDimension)..<((kvHead * capacity + total) * headDimension)])
          queries.withUnsafeBufferPointer { from in
            headQueries.withUnsafeMutableBufferPointer { to in
              for row in 0..<count {
                (to.baseAddress! + row * headDimension).update(
                  from: from.baseAddress! + row * queryWidth + head * headDimension, count: headDimension)
              }
            }
          }
          try headQueries.withUnsafeBufferPointer { q in
            try scores.withUnsafeMutableBufferPointer { s in
              try Linalg.gemm(
                q, rows: count, columns: headDimension, headKeys, rows: total, columns: headDimension,
                transposeB: true, into: s, alpha: scale)
              if let cap = architecture.attentionSoftcap { Self.softcap(s, cap: cap) }
              Self.causalSoftmax(s, rows: count, columns: total, past: past, window: settings.slidingWindow)
              try headOutput.withUnsafeMutableBufferPointer { o in
                try Linalg.gemm(
                  UnsafeBufferPointer(s), rows: count, columns: total, headValues, rows: total,
                  columns: headDimension, into: o)
              }
            }
          }
          headOutput.withUnsafeBufferPointer { from in
            attention.withUnsafeMutableBufferPointer { to in
              for row in 0..<count {
                (to.baseAddress! + row * queryWidth + head * headDimension).update(
                  from: from.baseAddress! + row * headDimension, count: headDimension)
              }
            }
          }
        }
      }
      if let cache {
        try cache.keys[layerIndex].withUnsafeBufferPointer { k in
          try cache.values[layerIndex].withUnsafeBufferPointer { v in try attend(keyStore: k, valueStore: v) }
        }
      } else {
        try scratchKeys.withUnsafeBufferPointer { k in
          try scratchValues.withUnsafeBufferPointer { v in try attend(keyStore: k, valueStore: v) }
        }
      }

      try attention.withUnsafeBufferPointer { try observeInputs?(layerIndex, .attentionOutput, $0) }
      try Self.apply(layer.output, attention, tokens: count, into: &projected, bias: nil)
      if let norm = layer.attentionOutputNorm {
        Self.rmsNorm(projected, weight: norm, offset: offset, epsilon: c.normEpsilon, rows: count, into: &projected)
      }
      Self.add(projected, to: &x)
      Self.rmsNorm(x, weight: layer.postAttentionNorm, offset: offset, epsilon: c.normEpsilon, rows: count, into: &normed)
      try normed.withUnsafeBufferPointer { try observeInputs?(layerIndex, .mlpInput, $0) }
      try Self.applyGateUp(layer, normed, tokens: count, into: &gate, &up)
      Self.gatedActivation(&gate, up, architecture.activation)
      try gate.withUnsafeBufferPointer { try observeInputs?(layerIndex, .mlpHidden, $0) }
      try Self.apply(layer.down, gate, tokens: count, into: &projected, bias: nil)
      if let norm = layer.mlpOutputNorm {
        Self.rmsNorm(projected, weight: norm, offset: offset, epsilon: c.normEpsilon, rows: count, into: &projected)
      }
      Self.add(projected, to: &x)
      x.withUnsafeBufferPointer { observe?(layerIndex + 1, $0) }
    }
    cache?.advance(by: count)
    Self.rmsNorm(x, weight: finalNorm, offset: offset, epsilon: c.normEpsilon, rows: count, into: &normed)
    return normed
  }

  /// The final norm of the last block's outputs `[count, hiddenSize]`: the head's input.
  func finalNormed(_ x: [Float], count: Int) -> [Float] {
    var normed = [Float](repeating: 0, count: x.count)
    Self.rmsNorm(
      x, weight: finalNorm, offset: configuration.architecture.normWeightOffset,
      epsilon: configuration.normEpsilon, rows: count, into: &normed)
    return normed
  }

  /// Logits `[rows, vocabularySize]` of final hidden states `[rows, hiddenSize]`.
  func logits(ofHidden hidden: UnsafeBufferPointer<Float>, rows: Int) throws -> [Float] {
    var out = [Float](repeating: 0, count: rows * configuration.vocabularySize)
    try out.withUnsafeMutableBufferPointer {
      try head.apply(hidden, tokens: rows, into: $0)
      if let cap = configuration.architecture.finalSoftcap { Self.softcap($0, cap: cap) }
    }
    return out
  }

  static func apply(
    _ weight: LinearWeight, _ input: [Float], tokens: Int, into output: inout [Float], bias: [Float]?
  ) throws {
    try input.withUnsafeBufferPointer { x in
      try output.withUnsafeMutableBufferPointer { y in try weight.apply(x, tokens: tokens, into: y) }
    }
    addBias(bias, to: &output, tokens: tokens)
  }

  /// A layer's query, key and value projections of one input, in one parallel region when they
  /// run from packed codes (`LinearWeight.apply(_:to:tokens:)`), each with its bias.
  static func applyQueryKeyValue(
    _ layer: DecoderLayer, _ input: [Float], tokens: Int,
    into queries: inout [Float], _ keys: inout [Float], _ values: inout [Float]
  ) throws {
    try input.withUnsafeBufferPointer { x in
      try queries.withUnsafeMutableBufferPointer { q in
        try keys.withUnsafeMutableBufferPointer { k in
          try values.withUnsafeMutableBufferPointer { v in
            try LinearWeight.apply([(layer.query, q), (layer.key, k), (layer.value, v)], to: x, tokens: tokens)
          }
        }
      }
    }
    addBias(layer.queryBias, to: &queries, tokens: tokens)
    addBias(layer.keyBias, to: &keys, tokens: tokens)
    addBias(layer.valueBias, to: &values, tokens: tokens)
  }

  /// A layer's gate and up projections of one input, in one parallel region like the above.
  static func applyGateUp(
    _ layer: DecoderLayer, _ input: [Float], tokens: Int, into gate: inout [Float], _ up: inout [Float]
  ) throws {
    try input.withUnsafeBufferPointer { x in
      try gate.withUnsafeMutableBufferPointer { g in
        try up.withUnsafeMutableBufferPointer { u in
          try LinearWeight.apply([(layer.gate, g), (layer.up, u)], to: x, tokens: tokens)
        }
      }
    }
  }

  /// Adds `bias` to each of the `tokens` rows of `output`.
  static func addBias(_ bias: [Float]?, to output: inout [Float], tokens: Int) {
    guard let bias else { return }
    let width = bias.count
    output.withUnsafeMutableBufferPointer { y in
      bias.withUnsafeBufferPointer { b in
        for row in 0..<tokens {
          let base = row * width
          for index in 0..<width { y[base &+ index] += b[index] }
        }
      }
    }
  }

  /// `y = x / sqrt(mean(x²) + ε) * (offset + w)` per row; the mean of squares is summed in
  /// Double. `y` may be `x` itself.
  static func rmsNorm(
    _ x: [Float], weight: [Float], offset: Float = 0, epsilon: Float, rows: Int, into y: inout [Float]
  ) {
    let width = weight.count
    x.withUnsafeBufferPointer { input in
      weight.withUnsafeBufferPointer { w in
        y.withUnsafeMutableBufferPointer { output in
          for row in 0..<rows {
            let base = row &* width
            var sum: Double = 0
            for index in 0..<width {
              let value = Double(input[base &+ index])
              sum += value * value
            }
            let inverse = 1 / (Float(sum / Double(width)) + epsilon).squareRoot()
            for index in 0..<width { output[base &+ index] = input[base &+ index] * inverse * (offset + w[index]) }
          }
        }
      }
    }
  }

  /// Rotates each head's halves in place: `(a, b) -> (a cos - b sin, b cos + a sin)`.
  static func rotate(
    _ x: inout [Float], heads: Int, headDimension: Int, rows: Int, cos: [Float], sin: [Float]
  ) {
    let half = headDimension / 2
    let width = heads * headDimension
    x.withUnsafeMutableBufferPointer { buffer in
      cos.withUnsafeBufferPointer { cosines in
        sin.withUnsafeBufferPointer { sines in
          for row in 0..<rows {
            for head in 0..<heads {
              let base = row &* width &+ head &* headDimension
              for index in 0..<half {
                let a = buffer[base &+ index]
                let b = buffer[base &+ half &+ index]
                let c = cosines[row &* half &+ index]
                let s = sines[row &* half &+ index]
                buffer[base &+ index] = a * c - b * s
                buffer[base &+ half &+ index] = b * c + a * s
              }
            }
          }
        }
      }
    }
  }

  /// Softmax of each row over the keys it may see (the `past + row + 1` first, of which the last
  /// `window` when there is one); the rest become 0.
  static func causalSoftmax(
    _ scores: UnsafeMutableBufferPointer<Float>, rows: Int, columns: Int, past: Int, window: Int? = nil
  ) {
    for row in 0..<rows {
      let base = row &* columns
      let visible = min(columns, past &+ row &+ 1)
      let first = window.map { max(0, visible &- $0) } ?? 0
      var largest = -Float.infinity
      for index in first..<visible { largest = max(largest, scores[base &+ index]) }
      var sum: Float = 0
      for index in first..<visible {
        let value = Foundation.exp(scores[base &+ index] - largest)
        scores[base &+ index] = value
        sum += value
      }
      let inverse = 1 / sum
      for index in 0..<first { scores[base &+ index] = 0 }
      for index in first..<visible { scores[base &+ index] *= inverse }
      for index in visible..<columns { scores[base &+ index] = 0 }
    }
  }

  /// `s = cap tanh(s / cap)`, Gemma 2's soft-capping of scores and logits.
  static func softcap(_ values: UnsafeMutableBufferPointer<Float>, cap: Float) {
    for index in values.indices { values[index] = cap * Foundation.tanh(values[index] / cap) }
  }

  /// `gate = act(gate) * up`.
  static func gatedActivation(_ gate: inout [Float], _ up: [Float], _ activation: DecoderArchitecture.Activation) {
    switch activation {
    case .silu: swiGLU(&gate, up)
    case .geluTanh:
      gate.withUnsafeMutableBufferPointer { g in
        up.withUnsafeBufferPointer { u in
          for index in g.indices { g[index] = geluTanh(g[index]) * u[index] }
        }
      }
    }
  }

  /// `0.5 x (1 + tanh(sqrt(2/π) (x + 0.044715 x³)))`, `gelu_pytorch_tanh`.
  static func geluTanh(_ x: Float) -> Float {
    0.5 * x * (1 + Foundation.tanh(0.797_884_56 * (x + 0.044715 * x * x * x)))
  }

  /// `gate = silu(gate) * up`.
  static func swiGLU(_ gate: inout [Float], _ up: [Float]) {
    gate.withUnsafeMutableBufferPointer { g in
      up.withUnsafeBufferPointer { u in
        for index in g.indices {
          let value = g[index]
          g[index] = value / (1 + Foundation.exp(-value)) * u[index]
        }
      }
    }
  }

  static func add(_ source: [Float], to target: inout [Float]) {
    target.withUnsafeMutableBufferPointer { t in
      source.withUnsafeBufferPointer { s in
        for index in t.indices { t[index] += s[index] }
      }
    }
  }
}
