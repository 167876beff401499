import QCompute

extension DecoderGraph {
  /// Adds `local` into `gradients[name]`, masked by the straight-through estimator when `name`
  /// is fake-quantized.
  func accumulate(_ local: [T], name: String, cache: Cache, into gradients: inout [String: [T]]) {
    var local = local
    if let passes = cache.passes[name] {
      local.withUnsafeMutableBufferPointer { buffer in
        guard let base = buffer.baseAddress else { return }
        let out = SendableMutablePointer(base)
        TrainingOps.forEachChunk(min(buffer.count, passes.count)) { range in
          for index in range where !passes[index] { out.pointer[index] = 0 }
        }
      }
    }
    if var existing = gradients.removeValue(forKey: name) {
      TrainingOps.add(local, to: &existing)
      gradients[name] = existing
    } else {
      gradients[name] = local
    }
  }

  /// The backward of `project`: returns `dx` and adds the gradients of the trainable weight,
  /// bias and adapter matrices.
  func projectBackward(
    _ dy: [T], x: [T], rows: Int, module: String, outputs: Int, inputs: Int, layer: LayerCache,
    cache: Cache, trainable: Set<String>, gradients: inout [String: [T]]
  ) throws -> [T] {
    let name = module + ".weight"
    let weight = try cache.effective[name] ?? tensor(name)
    var dx = try TrainingOps.linearInputGradient(dy, rows: rows, weight: weight, outputs: outputs, inputs: inputs)
    if trainable.contains(name) {
      var local = [T](repeating: 0, count: outputs * inputs)
      try TrainingOps.accumulateWeightGradient(dy, x: x, rows: rows, outputs: outputs, inputs: inputs, into: &local)
      accumulate(local, name: name, cache: cache, into: &gradients)
    }
    let biasName = module + ".bias"
    if tensors[biasName] != nil, trainable.contains(biasName) {
      var local = [T](repeating: 0, count: outputs)
      TrainingOps.accumulateBiasGradient(dy, rows: rows, outputs: outputs, into: &local)
      accumulate(local, name: biasName, cache: cache, into: &gradients)
    }
    if let adapter = adapters[module], let hidden = layer.loraHidden[module] {
      let aName = module + ".lora_A.weight"
      let bName = module + ".lora_B.weight"
      var dA = [T](repeating: 0, count: adapter.rank * inputs)
      var dB = [T](repeating: 0, count: outputs * adapter.rank)
      try TrainingOps.loraBackward(
        dy, x: x, hidden: hidden, rows: rows, a: try tensor(aName), b: try tensor(bName), rank: adapter.rank,
        outputs: outputs, inputs: inputs, scale: T(adapter.scale), dA: &dA, dB: &dB, dx: &dx)
      if trainable.contains(aName) { accumulate(dA, name: aName, cache: cache, into: &gradients) }
      if trainable.contains(bName) { accumulate(dB, name: bName, cache: cache, into: &gradients) }
    }
    return dx
  }

  /// The backward of `projectStored`: `dy` holds each slot's output gradient; returns the
  /// gradient at the shared input. A fused weight takes the gradients joined by columns.
  func projectStoredBackward(
    _ dy: [[T]], x: [T], rows: Int, prefix p: String, slots: [LinearSlot], layer: LayerCache, cache: Cache,
    trainable: Set<String>, gradients: inout [String: [T]]
  ) throws -> [T] {
    let c = configuration
    if let fused = c.architecture.storedLinears.first(where: { $0.slots == slots }), fused.isFused {
      let (outputs, inputs) = fused.shape(c)
      return try projectBackward(
        TrainingOps.joinColumns(dy, rows: rows), x: x, rows: rows, module: p + fused.module, outputs: outputs,
        inputs: inputs, layer: layer, cache: cache, trainable: trainable, gradients: &gradients)
    }
    var dx: [T]? = nil
    for (slot, dSlot) in zip(slots, dy) {
      let (outputs, inputs) = c.shape(of: slot)
      let local = try projectBackward(
        dSlot, x: x, rows: rows, module: p + slot.rawValue, outputs: outputs, inputs: inputs, layer: layer,
        cache: cache, trainable: trainable, gradients: &gradients)
      if var sum = dx {
        TrainingOps.add(local, to: &sum)
        dx = sum
      } else {
        dx = local
      }
    }
    return dx ?? []
  }

  func normBackward(
    _ dy: [T], x: [T], rows: Int, name: String, inverseRMS: [T], trainable: Set<String>, cache: Cache,
    gradients: inout [String: [T]]
  ) throws -> [T] {
    // d(offset + w)/dw = 1, so the weight gradient is the multiplier's.
    let weight = try normWeight(name)
    var dWeight: [T]? = trainable.contains(name) ? [T](repeating: 0, count: weight.count) : nil
    let dx = TrainingOps.rmsNormBackward(dy, x: x, rows: rows, weight: weight, inverseRMS: inverseRMS, dWeight: &dWeight)
    if let dWeight { accumulate(dWeight, name: name, cache: cache, into: &gradients) }
    return dx
  }

  /// Gradients of the loss whose gradient with respect to the logits is `dLogits`, for the
  /// parameters in `trainable` only.
  func backward(dLogits: [T], cache: Cache, trainable: Set<String>) throws -> [String: [T]] {
    let c = configuration
    let rows = cache.tokens.count
    let hidden = c.hiddenSize
    guard dLogits.count == rows * c.vocabularySize else {
      throw TrainingError.shapeMismatch(
        operation: "backward", detail: "\(dLogits.count) logit gradients for \(rows) rows of \(c.vocabularySize)")
    }
    var gradients: [String: [T]] = [:]
    let empty = LayerCache()
    var dLogits = dLogits
    if let cap = c.architecture.finalSoftcap { TrainingOps.softcapBackward(&dLogits, outputs: cache.logits, cap: T(cap)) }

    let dNormed = try projectBackward(
      dLogits, x: cache.finalNormed, rows: rows, module: String(headName.dropLast(".weight".count)),
      outputs: c.vocabularySize, inputs: hidden, layer: empty, cache: cache, trainable: trainable, gradients: &gradients)
    var dx = try normBackward(
      dNormed, x: cache.finalInput, rows: rows, name: "model.norm.weight", inverseRMS: cache.finalInverseRMS,
      trainable: trainable, cache: cache, gradients: &gradients)

    for index in stride(from: c.layerCount - 1, through: 0, by: -1) {
      try backwardLayer(
        index: index, prefix: "model.layers.\(index).", layer: cache.layers[index], dx: &dx, rows: rows,
        cache: cache, trainable: trainable, gradients: &gradients)
    }
    let embeddingName = "model.embed_tokens.weight"
    if trainable.contains(embeddingName) {
      if let scale = c.architecture.embeddingScale { dx = dx.map { $0 * T(scale) } }
      var local = [T](repeating: 0, count: c.vocabularySize * hidden)
      TrainingOps.embedBackward(dx, width: hidden, tokens: cache.tokens, into: &local)
      // A fake-quantized table was looked up on its grid: the straight-through mask applies.
      accumulate(local, name: embeddingName, cache: cache, into: &gradients)
    }
    return gradients
  }

  /// The backward of `forwardLayer`: turns `dx`, the gradient at the layer's output, into the
  /// gradient at its input and adds the gradients of its trainable parameters.
  func backwardLayer(
    index: Int, prefix p: String, layer: LayerCache, dx: inout [T], rows: Int, cache: Cache,
    trainable: Set<String>, gradients: inout [String: [T]]
  ) throws {
    let c = configuration
    let a = c.architecture
    let shape = attentionShape(lengths: cache.lengths, layer: index)
    let hidden = c.hiddenSize
    let d = c.headDimension
    let queryWidth = c.headCount * d
    // MLP branch.
    var dDown = dx
    if let outputNorm = a.normSuffix(.mlpOutput) {
      dDown = try normBackward(
        dx, x: layer.down, rows: rows, name: p + outputNorm, inverseRMS: layer.inverseRMSDown,
        trainable: trainable, cache: cache, gradients: &gradients)
    }
    let dActivated = try projectBackward(
      dDown, x: layer.activated, rows: rows, module: p + "mlp.down_proj", outputs: hidden, inputs: c.intermediateSize,
      layer: layer, cache: cache, trainable: trainable, gradients: &gradients)
    let (dGate, dUp) = TrainingOps.gatedActivationBackward(dActivated, gate: layer.gate, up: layer.up, a.activation)
    let dNormed2 = try projectStoredBackward(
      [dGate, dUp], x: layer.normed2, rows: rows, prefix: p, slots: [.gate, .up], layer: layer, cache: cache,
      trainable: trainable, gradients: &gradients)
    TrainingOps.add(
      try normBackward(
        dNormed2, x: layer.middle, rows: rows, name: p + a.mlpInputNormSuffix,
        inverseRMS: layer.inverseRMS2, trainable: trainable, cache: cache, gradients: &gradients),
      to: &dx)
    // Attention branch.
    var dAttended = dx
    if let outputNorm = a.normSuffix(.attentionOutput) {
      dAttended = try normBackward(
        dx, x: layer.attended, rows: rows, name: p + outputNorm, inverseRMS: layer.inverseRMSAttended,
        trainable: trainable, cache: cache, gradients: &gradients)
    }
    let dAttention = try projectBackward(
      dAttended, x: layer.attention, rows: rows, module: p + "self_attn.o_proj", outputs: hidden, inputs: queryWidth,
      layer: layer, cache: cache, trainable: trainable, gradients: &gradients)
    var (dQ, dK, dV) = try TrainingOps.attentionBackward(
      dAttention, queries: layer.queries, keys: layer.keys, values: layer.values,
      probabilities: layer.probabilities, shape: shape)
    if !layer.cosines.isEmpty {
      TrainingOps.rotate(&dQ, rows: rows, heads: c.headCount, headDimension: d, cos: layer.cosines, sin: layer.sines, inverse: true)
      TrainingOps.rotate(&dK, rows: rows, heads: c.keyValueHeadCount, headDimension: d, cos: layer.cosines, sin: layer.sines, inverse: true)
    }
    if let queryNorm = a.normSuffix(.query), let keyNorm = a.normSuffix(.key) {
      dQ = try normBackward(
        dQ, x: layer.rawQueries, rows: rows * c.headCount, name: p + queryNorm, inverseRMS: layer.inverseRMSQueries,
        trainable: trainable, cache: cache, gradients: &gradients)
      dK = try normBackward(
        dK, x: layer.rawKeys, rows: rows * c.keyValueHeadCount, name: p + keyNorm, inverseRMS: layer.inverseRMSKeys,
        trainable: trainable, cache: cache, gradients: &gradients)
    }
    let dNormed1 = try projectStoredBackward(
      [dQ, dK, dV], x: layer.normed1, rows: rows, prefix: p, slots: [.query, .key, .value], layer: layer,
      cache: cache, trainable: trainable, gradients: &gradients)
    TrainingOps.add(
      try normBackward(
        dNormed1, x: layer.input, rows: rows, name: p + "input_layernorm.weight",
        inverseRMS: layer.inverseRMS1, trainable: trainable, cache: cache, gradients: &gradients),
      to: &dx)
  }
}
