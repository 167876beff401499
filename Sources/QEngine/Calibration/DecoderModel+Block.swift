import QCompute

/// The four distinct inputs of a block's seven linear layers: q/k/v share the normed block input,
/// gate/up share the normed attention output.
public enum LinearInput: Int, Sendable, CaseIterable, Hashable {
  /// RMSNorm of the block input, read by q/k/v.
  case attentionInput
  /// The concatenated attention heads, read by o.
  case attentionOutput
  /// RMSNorm after attention, read by gate/up.
  case mlpInput
  /// silu(gate) * up, read by down.
  case mlpHidden
}

/// A linear layer of a decoder block, named as in Hugging Face checkpoints.
public enum LinearSlot: String, Sendable, CaseIterable, Hashable {
  case query = "self_attn.q_proj"
  case key = "self_attn.k_proj"
  case value = "self_attn.v_proj"
  case output = "self_attn.o_proj"
  case gate = "mlp.gate_proj"
  case up = "mlp.up_proj"
  case down = "mlp.down_proj"

  /// The activation this layer multiplies.
  public var input: LinearInput {
    switch self {
    case .query, .key, .value: .attentionInput
    case .output: .attentionOutput
    case .gate, .up: .mlpInput
    case .down: .mlpHidden
    }
  }

  /// The checkpoint name of this layer's weight in block `block`.
  public func tensorName(block: Int, prefix: String = "") -> String {
    "\(prefix)model.layers.\(block).\(rawValue).weight"
  }
}

extension DecoderLayer {
  subscript(slot: LinearSlot) -> LinearWeight {
    get {
      switch slot {
      case .query: query
      case .key: key
      case .value: value
      case .output: output
      case .gate: gate
      case .up: up
      case .down: down
      }
    }
    set {
      switch slot {
      case .query: query = newValue
      case .key: key = newValue
      case .value: value = newValue
      case .output: output = newValue
      case .gate: gate = newValue
      case .up: up = newValue
      case .down: down = newValue
      }
    }
  }
}

extension DecoderModel {
  /// Row-major `[count, hiddenSize]` embeddings of `tokens`, the input of block 0.
  func embeddings(tokens: [Int]) throws -> [Float] {
    let hidden = configuration.hiddenSize
    guard !tokens.isEmpty else { throw DecoderError.invalidInput(operation: "embeddings", reason: "no tokens") }
    for token in tokens where token < 0 || token >= configuration.vocabularySize {
      throw DecoderError.tokenOutOfRange(
        location: location, token: token, vocabularySize: configuration.vocabularySize)
    }
    var x = [Float](repeating: 0, count: tokens.count * hidden)
    x.withUnsafeMutableBufferPointer { buffer in
      for (row, token) in tokens.enumerated() {
        embedding.row(token, into: UnsafeMutableBufferPointer(rebasing: buffer[(row * hidden)..<((row + 1) * hidden)]))
      }
    }
    return x
  }

  /// Runs one block on `x` (`[count, hiddenSize]`, positions from 0, no cache) in place,
  /// the same arithmetic as `forward`, with `layer`'s weights (which may differ from the model's).
  ///
  /// `observe` sees each distinct linear input, `[count, width]` row-major, before it is used.
  func runBlock(
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
    let (cosines, sines) = rotary.tables(positions: 0..<count, totalLength: count)

    var normed = [Float](repeating: 0, count: count * hidden)
    var queries = [Float](repeating: 0, count: count * queryWidth)
    var keys = [Float](repeating: 0, count: count * keyWidth)
    var values = [Float](repeating: 0, count: count * keyWidth)
    Self.rmsNorm(x, weight: layer.inputNorm, epsilon: c.normEpsilon, rows: count, into: &normed)
    try normed.withUnsafeBufferPointer { try observe?(.attentionInput, $0) }
    try Self.apply(layer.query, normed, tokens: count, into: &queries, bias: layer.queryBias)
    try Self.apply(layer.key, normed, tokens: count, into: &keys, bias: layer.keyBias)
    try Self.apply(layer.value, normed, tokens: count, into: &values, bias: layer.valueBias)
    Self.rotate(&queries, heads: c.headCount, headDimension: headDimension, rows: count, cos: cosines, sin: sines)
    Self.rotate(&keys, heads: c.keyValueHeadCount, headDimension: headDimension, rows: count, cos: cosines, sin: sines)

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
          target[row &* headDimension &+ index] = source[row &* width &+ head &* headDimension &+ index]
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
          attention[row &* queryWidth &+ head &* headDimension &+ index] = headOutput[row &* headDimension &+ index]
        }
      }
    }
    try attention.withUnsafeBufferPointer { try observe?(.attentionOutput, $0) }

    var projected = [Float](repeating: 0, count: count * hidden)
    try Self.apply(layer.output, attention, tokens: count, into: &projected, bias: nil)
    Self.add(projected, to: &x)
    Self.rmsNorm(x, weight: layer.postAttentionNorm, epsilon: c.normEpsilon, rows: count, into: &normed)
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

extension DecoderModel {
  /// Blocks in the model.
  public var blockCount: Int { layers.count }

  /// The weight of `slot` in block `block` as Float32, `[rows, columns]` row-major (packed
  /// weights dequantized).
  public func linearWeights(block: Int, slot: LinearSlot) throws -> (values: [Float], rows: Int, columns: Int) {
    guard layers.indices.contains(block) else {
      throw DecoderError.invalidInput(operation: "linearWeights", reason: "block \(block) of \(layers.count)")
    }
    let weight = layers[block][slot]
    return (weight.denseValues(), weight.rows, weight.columns)
  }
}
