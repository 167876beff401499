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
    guard !tokens.isEmpty else { throw DecoderError.invalidInput(operation: "embeddings", reason: "no tokens") }
    return try embedRows(tokens)
  }

  /// Runs block `block` on `x` (`[count, hiddenSize]`, positions from 0, no cache) in place
  /// with `layer`'s weights (which may differ from the model's) and the block's attention
  /// settings, through `forward` itself, so calibration sees exactly the arithmetic of inference.
  ///
  /// `observe` sees each distinct linear input, `[count, width]` row-major, before it is used.
  func runBlock(
    _ layer: DecoderLayer, block: Int, x: inout [Float], count: Int,
    observe: ((LinearInput, UnsafeBufferPointer<Float>) throws -> Void)? = nil
  ) throws {
    guard x.count == count * configuration.hiddenSize else {
      throw DecoderError.invalidInput(
        operation: "runBlock", reason: "\(x.count) values are not \(count) rows of \(configuration.hiddenSize)")
    }
    var output: [Float] = []
    _ = try forward(
      embeddings: x, cache: nil, blocks: [layer], firstLayer: block,
      observe: { index, values in if index == 1 { output = Array(values) } },
      observeInputs: observe.map { observe in { _, input, values in try observe(input, values) } })
    x = output
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

  /// The weight `linear` of block `block` as the checkpoint stores it (a fused weight's slots
  /// stacked by rows), as Float32 `[rows, columns]` row-major.
  public func linearWeights(block: Int, linear: StoredLinear) throws -> (values: [Float], rows: Int, columns: Int) {
    let parts = try linear.slots.map { try linearWeights(block: block, slot: $0) }
    return (RowStack.join(parts.map(\.values)), parts.reduce(0) { $0 + $1.rows }, parts[0].columns)
  }
}
