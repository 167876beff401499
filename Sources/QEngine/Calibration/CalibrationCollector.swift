import QCompute

/// Runs a decoder on calibration windows and collects what calibrated quantization needs: the
/// input Gram matrix Xᵀ X of every linear layer (summed over all calibration tokens).
///
/// Two ways to use it:
/// - `collectGrams(windows:)` runs the full-precision model window by window; memory stays at
///   one window's activations plus the Gram matrices.
/// - The sequential scheme (`start(windows:)`, `grams(of:)`, `replace(_:with:)`, `advance()`)
///   keeps every window's input to the current block, so each block is calibrated on the
///   outputs of the blocks before it as they were quantized (GPTQ's sequential order); memory
///   is windows × tokens × hidden floats.
public final class CalibrationCollector: @unchecked Sendable {
  public let model: DecoderModel
  public let tokenizer: Tokenizer?
  /// Put before every tensor name, e.g. `language_model.` for a LLaVA checkpoint.
  public let prefix: String
  /// The blocks as calibration sees them: the model's, with replaced weights in earlier blocks.
  var layers: [DecoderLayer]
  /// The input of block `currentBlock` for each window.
  var blockInputs: [[Float]] = []
  var windowLengths: [Int] = []
  /// The block the sequential scheme is at; `layerCount` when done.
  public private(set) var currentBlock = 0

  public init(model: DecoderModel, tokenizer: Tokenizer? = nil, prefix: String = "") {
    self.model = model
    self.tokenizer = tokenizer
    self.prefix = prefix
    layers = model.layers
  }

  /// Disjoint windows of `context` tokens from the start of `dataset`, at most `count` of them;
  /// a shorter last window is dropped so every window has the same length.
  /// - Throws: `DecoderError.invalidInput` without a tokenizer or when no full window fits.
  public func windows(of dataset: TextDataset, context: Int, count: Int? = nil) throws -> [[Int]] {
    guard let tokenizer else {
      throw DecoderError.invalidInput(operation: "calibration", reason: "no tokenizer to read text with")
    }
    let ids = dataset.tokenize(with: tokenizer)
    guard context >= 1 else {
      throw DecoderError.invalidInput(operation: "calibration", reason: "context \(context) is not positive")
    }
    var windows: [[Int]] = []
    var start = 0
    while start + context <= ids.count, windows.count < (count ?? Int.max) {
      windows.append(Array(ids[start..<(start + context)]))
      start += context
    }
    guard !windows.isEmpty else {
      throw DecoderError.invalidInput(
        operation: "calibration", reason: "\(ids.count) tokens do not fill one window of \(context)")
    }
    return windows
  }

  /// The input Gram matrix of every q/k/v/o/gate/up/down weight of the full-precision model,
  /// keyed by tensor name as the checkpoint stores it (a fused `qkv_proj` or `gate_up_proj` has
  /// one); layers that share an input share one matrix.
  /// - Parameter progress: called after each window with (windows done, windows).
  public func collectGrams(
    windows: [[Int]], progress: ((Int, Int) -> Void)? = nil
  ) throws -> [String: Matrix<Double>] {
    let blocks = model.layers
    var accumulators = blocks.indices.map { _ in inputAccumulators(inputs: Set(LinearInput.allCases)) }
    for (index, window) in windows.enumerated() {
      // One forward pass per window; the hook hands over every block's linear inputs.
      _ = try model.forward(
        tokens: window, cache: nil,
        observeInputs: { block, input, values in
          guard accumulators[block][input] != nil else { return }
          try self.checkFinite(values, count: window.count, block: block, input: input, window: index)
          try accumulators[block][input]?.add(values, count: window.count)
        })
      progress?(index + 1, windows.count)
    }
    var result: [String: Matrix<Double>] = [:]
    for block in blocks.indices {
      let matrices = try accumulators[block].mapValues { try $0.matrix() }
      for linear in model.configuration.architecture.storedLinears {
        result[linear.tensorName(block: block, prefix: prefix)] = matrices[linear.input]
      }
    }
    return result
  }

  /// Each stored linear's input energy over `windows` on the model as it is: per column, the
  /// squared inputs summed over every token (a Gram matrix's diagonal, at the cost of a pass
  /// over the inputs), by tensor name; what `llama-imatrix` records, before dividing by tokens.
  public func collectInputEnergies(
    windows: [[Int]], progress: ((Int, Int) -> Void)? = nil
  ) throws -> [String: [Double]] {
    var sums: [[LinearInput: [Double]]] = model.layers.indices.map { _ in [:] }
    for (index, window) in windows.enumerated() {
      _ = try model.forward(
        tokens: window, cache: nil,
        observeInputs: { block, input, values in
          try self.checkFinite(values, count: window.count, block: block, input: input, window: index)
          let width = values.count / max(window.count, 1)
          var sum = sums[block][input] ?? [Double](repeating: 0, count: width)
          for token in 0..<window.count {
            let row = token * width
            for column in 0..<width {
              let value = Double(values[row + column])
              sum[column] += value * value
            }
          }
          sums[block][input] = sum
        })
      progress?(index + 1, windows.count)
    }
    var result: [String: [Double]] = [:]
    for block in sums.indices {
      for linear in model.configuration.architecture.storedLinears {
        result[linear.tensorName(block: block, prefix: prefix)] = sums[block][linear.input]
      }
    }
    return result
  }

  /// Stops calibration at the first NaN or infinite activation, naming the layer it feeds: one
  /// would make every Gram entry it touches non-finite and fail GPTQ far from the cause.
  /// - Parameter values: `[count, width]` row-major, the input of the layers reading `input`.
  func checkFinite(
    _ values: UnsafeBufferPointer<Float>, count: Int, block: Int, input: LinearInput, window: Int
  ) throws {
    let layer = {
      self.model.configuration.architecture.storedLinears.first { $0.input == input }?
        .tensorName(block: block, prefix: self.prefix) ?? "block \(block)"
    }
    try checkFinite(values, count: count, feeding: layer, window: window)
  }

  /// `checkFinite(_:count:block:input:window:)` for the input of the tensor `feeding` names
  /// (asked only when a value is not finite).
  func checkFinite(
    _ values: UnsafeBufferPointer<Float>, count: Int, feeding tensor: () -> String, window: Int
  ) throws {
    guard let (index, value) = PackEncoder.firstNonFinite(values, shape: [values.count]) else { return }
    let width = max(values.count / max(count, 1), 1)
    throw DecoderError.invalidInput(
      operation: "calibration",
      reason: "the input of '\(tensor())' holds \(value) at token \(index[0] / width), feature \(index[0] % width) of window \(window)")
  }

  /// Starts the sequential scheme at block 0 with the embeddings of `windows`.
  public func start(windows: [[Int]]) throws {
    blockInputs = try windows.map { try model.embeddings(tokens: $0) }
    windowLengths = windows.map(\.count)
    currentBlock = 0
  }

  /// The Gram matrices of `inputs` of the current block over all windows, with the current
  /// block's weights as they are now (so o sees quantized q/k/v once they are replaced).
  public func grams(of inputs: Set<LinearInput>) throws -> [LinearInput: Matrix<Double>] {
    let layer = try current()
    var accumulators = inputAccumulators(inputs: inputs)
    for (index, input) in blockInputs.enumerated() {
      var x = input
      let count = windowLengths[index]
      try model.runBlock(layer, block: currentBlock, x: &x, count: count) { kind, values in
        guard accumulators[kind] != nil else { return }
        try self.checkFinite(values, count: count, block: self.currentBlock, input: kind, window: index)
        try accumulators[kind]?.add(values, count: count)
      }
    }
    return try accumulators.mapValues { try $0.matrix() }
  }

  /// The current block's weight in `slot`, `[rows, columns]` row-major, as calibration uses it.
  public func weights(of slot: LinearSlot) throws -> (values: [Float], rows: Int, columns: Int) {
    let weight = try current()[slot]
    return (weight.denseValues(), weight.rows, weight.columns)
  }

  /// The current block's weight `linear` as the checkpoint stores it, `[rows, columns]`
  /// row-major: a fused weight is its slots' rows stacked.
  public func weights(of linear: StoredLinear) throws -> (values: [Float], rows: Int, columns: Int) {
    let layer = try current()
    let parts = linear.slots.map { layer[$0] }
    return (RowStack.join(parts.map { $0.denseValues() }), parts.reduce(0) { $0 + $1.rows }, parts[0].columns)
  }

  /// Replaces the current block's weight `linear`, `[rows, columns]` as the checkpoint stores
  /// it; a fused weight is cut back into its slots.
  public func replace(_ linear: StoredLinear, with values: [Float]) throws {
    let layer = try current()
    let rows = linear.slots.map { layer[$0].rows }
    let columns = layer[linear.slots[0]].columns
    guard values.count == rows.reduce(0, +) * columns else {
      throw DecoderError.invalidInput(
        operation: "calibration",
        reason: "\(values.count) values replace '\(linear.tensorName(block: currentBlock, prefix: prefix))' of \(rows.reduce(0, +) * columns)")
    }
    for (slot, part) in zip(linear.slots, RowStack.split(values, rows: rows, columns: columns)) {
      try replace(slot, with: part)
    }
  }

  /// Replaces the current block's weight in `slot`, for example by its dequantized version.
  public func replace(_ slot: LinearSlot, with values: [Float]) throws {
    let old = try current()[slot]
    guard values.count == old.rows * old.columns else {
      throw DecoderError.invalidInput(
        operation: "calibration",
        reason: "\(values.count) values replace '\(slot.tensorName(block: currentBlock, prefix: prefix))' of \(old.rows * old.columns)")
    }
    layers[currentBlock][slot] = .dense(rows: old.rows, columns: old.columns, values: values)
  }

  /// Runs the current block, with its weights as they are now, on every window; its outputs
  /// become the next block's inputs.
  public func advance() throws {
    let layer = try current()
    for index in blockInputs.indices {
      try model.runBlock(layer, block: currentBlock, x: &blockInputs[index], count: windowLengths[index])
    }
    currentBlock += 1
  }

  /// The current block's inputs for each window, `[tokens, hiddenSize]` row-major.
  public var currentInputs: [[Float]] { blockInputs }

  /// The output head's weight name: the embedding's when the head is tied to it.
  public var headTensorName: String {
    prefix + (model.headIsEmbedding ? "model.embed_tokens.weight" : "lm_head.weight")
  }

  /// The output head's weight, `[vocabulary, hidden]` row-major.
  public func headWeights() -> (values: [Float], rows: Int, columns: Int) {
    (model.head.denseValues(), model.head.rows, model.head.columns)
  }

  /// The Gram matrix of the output head's input over all windows: the final norm of the last
  /// block's outputs, once every block has run (`advance` past the last one).
  public func headGram() throws -> Matrix<Double> {
    guard currentBlock == layers.count, !blockInputs.isEmpty else {
      throw DecoderError.invalidInput(
        operation: "calibration",
        reason: blockInputs.isEmpty
          ? "no windows were started" : "the head's inputs exist after block \(layers.count - 1), not at block \(currentBlock)")
    }
    var accumulator = GramAccumulator(width: model.configuration.hiddenSize)
    for (index, hidden) in blockInputs.enumerated() {
      let count = windowLengths[index]
      let normed = model.finalNormed(hidden, count: count)
      try normed.withUnsafeBufferPointer { values in
        try checkFinite(values, count: count, feeding: { self.headTensorName }, window: index)
        try accumulator.add(values, count: count)
      }
    }
    return try accumulator.matrix()
  }

  func current() throws -> DecoderLayer {
    guard currentBlock < layers.count, !blockInputs.isEmpty else {
      throw DecoderError.invalidInput(
        operation: "calibration",
        reason: blockInputs.isEmpty ? "no windows were started" : "all \(layers.count) blocks are done")
    }
    return layers[currentBlock]
  }

  func inputAccumulators(inputs: Set<LinearInput>) -> [LinearInput: GramAccumulator] {
    let c = model.configuration
    var result: [LinearInput: GramAccumulator] = [:]
    for input in inputs {
      let width =
        switch input {
        case .attentionInput, .mlpInput: c.hiddenSize
        case .attentionOutput: c.headCount * c.headDimension
        case .mlpHidden: c.intermediateSize
        }
      result[input] = GramAccumulator(width: width)
    }
    return result
  }
}
