import QCompute

/// A low-rank adapter on one linear module: `y += scale (x Aᵀ) Bᵀ`.
public struct LoRAAdapter: Sendable, Equatable {
  public var rank: Int
  public var scale: Float
}

/// The decoder's parameters and its forward and backward passes in one element type.
///
/// Parameters are named as in Hugging Face checkpoints (`model.layers.0.self_attn.q_proj.weight`);
/// adapters add `<module>.lora_A.weight` `[rank, in]` and `<module>.lora_B.weight` `[out, rank]`.
struct DecoderGraph<T: TrainingScalar>: Sendable {
  var configuration: DecoderConfiguration
  var tensors: [String: [T]]
  var shapes: [String: [Int]]
  var adapters: [String: LoRAAdapter] = [:]
  var quantizers: [String: any FakeQuantizer] = [:]

  var tiedHead: Bool { tensors["lm_head.weight"] == nil }
  var headName: String { tiedHead ? "model.embed_tokens.weight" : "lm_head.weight" }

  /// Everything the backward needs from one layer's forward.
  struct LayerCache: Sendable {
    var input: [T] = []
    var inverseRMS1: [T] = []
    var normed1: [T] = []
    /// The rotary tables of the layer's rope, empty for a layer without one.
    var cosines: [T] = []
    var sines: [T] = []
    /// Queries and keys before their per-head norms, and those norms' inverse RMS.
    var rawQueries: [T] = []
    var rawKeys: [T] = []
    var inverseRMSQueries: [T] = []
    var inverseRMSKeys: [T] = []
    var queries: [T] = []
    var keys: [T] = []
    var values: [T] = []
    var probabilities: [[T]] = []
    var attention: [T] = []
    /// The attention and MLP outputs before their norms (sandwich norms only).
    var attended: [T] = []
    var inverseRMSAttended: [T] = []
    var down: [T] = []
    var inverseRMSDown: [T] = []
    var middle: [T] = []
    var inverseRMS2: [T] = []
    var normed2: [T] = []
    var gate: [T] = []
    var up: [T] = []
    var activated: [T] = []
    var loraHidden: [String: [T]] = [:]
  }

  struct Cache: Sendable {
    var tokens: [Int]
    var lengths: [Int]
    var layers: [LayerCache]
    var finalInput: [T]
    var finalInverseRMS: [T]
    var finalNormed: [T]
    var effective: [String: [T]]
    var passes: [String: [Bool]]
    /// The soft-capped logits, for the cap's backward.
    var logits: [T] = []
  }

  func tensor(_ name: String) throws -> [T] {
    guard let values = tensors[name] else { throw TrainingError.unknownParameter(name: name) }
    return values
  }

  /// Cosines and sines of `rope` for stacked sequences, each from position 0.
  func rotaryTables(lengths: [Int], rope: DecoderArchitecture.Rope) -> (cos: [T], sin: [T]) {
    let rotary = RotaryEmbedding(headDimension: configuration.headDimension, rope: rope)
    var cosines: [T] = []
    var sines: [T] = []
    for length in lengths {
      let (cos, sin) = rotary.tables(positions: 0..<length, totalLength: length)
      cosines += cos.map { T($0) }
      sines += sin.map { T($0) }
    }
    return (cosines, sines)
  }

  /// How layer `index` attends to sequences of `lengths`.
  func attentionShape(lengths: [Int], layer index: Int) -> TrainingOps.AttentionShape {
    let c = configuration
    return TrainingOps.AttentionShape(
      lengths: lengths, heads: c.headCount, keyValueHeads: c.keyValueHeadCount, headDimension: c.headDimension,
      scale: Double(c.attentionScale), window: c.attention(layer: index).slidingWindow,
      softcap: c.architecture.attentionSoftcap.map(Double.init))
  }

  /// The weight a norm multiplies by: `offset + w`.
  func normWeight(_ name: String) throws -> [T] {
    let weight = try tensor(name)
    let offset = configuration.architecture.normWeightOffset
    return offset == 0 ? weight : weight.map { $0 + T(offset) }
  }

  /// RMSNorm of `rows` rows of `x` by the norm `name`; returns the output and inverse RMS.
  func norm(_ x: [T], rows: Int, name: String) throws -> (output: [T], inverseRMS: [T]) {
    TrainingOps.rmsNorm(x, rows: rows, weight: try normWeight(name), epsilon: configuration.normEpsilon)
  }

  /// The weight the forward multiplies by: the latent weight, or its fake-quantized grid value.
  /// A weight used twice in one pass (a tied embedding, looked up and then the head) is rounded once.
  func effectiveWeight(_ name: String, rows: Int, columns: Int, cache: inout Cache) throws -> [T] {
    if let rounded = cache.effective[name] { return rounded }
    let latent = try tensor(name)
    guard let quantizer = quantizers[name] else { return latent }
    // Training runs in Float, where both conversions are the identity; gradient checks run in Double.
    let floats = T.self == Float.self ? unsafeBitCast(latent, to: [Float].self) : latent.map { Float($0) }
    let (values, passes) = quantizer.fakeQuantize(floats, rows: rows, columns: columns)
    let converted = T.self == Float.self ? unsafeBitCast(values, to: [T].self) : values.map { T($0) }
    cache.effective[name] = converted
    cache.passes[name] = passes
    return converted
  }

  /// `y = x Wᵀ + b` for `module`, with its adapter and fake quantization when it has them.
  func project(
    _ x: [T], rows: Int, module: String, outputs: Int, inputs: Int, cache: inout Cache, layer: inout LayerCache
  ) throws -> [T] {
    let weight = try effectiveWeight(module + ".weight", rows: outputs, columns: inputs, cache: &cache)
    var y = try TrainingOps.linear(x, rows: rows, weight: weight, outputs: outputs, inputs: inputs, bias: tensors[module + ".bias"])
    if let adapter = adapters[module] {
      layer.loraHidden[module] = try TrainingOps.loraForward(
        x, rows: rows, a: try tensor(module + ".lora_A.weight"), b: try tensor(module + ".lora_B.weight"),
        rank: adapter.rank, outputs: outputs, inputs: inputs, scale: T(adapter.scale), into: &y)
    }
    return y
  }

  /// The outputs of `slots` (which read the same input `x`), each `[rows, slot's outputs]`: one
  /// projection per slot, or one through the fused weight that stores them (Phi-3's `qkv_proj`,
  /// `gate_up_proj`), split by columns.
  func projectStored(
    _ x: [T], rows: Int, prefix p: String, slots: [LinearSlot], cache: inout Cache, layer: inout LayerCache
  ) throws -> [[T]] {
    let c = configuration
    if let fused = c.architecture.storedLinears.first(where: { $0.slots == slots }), fused.isFused {
      let (outputs, inputs) = fused.shape(c)
      let y = try project(x, rows: rows, module: p + fused.module, outputs: outputs, inputs: inputs, cache: &cache, layer: &layer)
      return TrainingOps.splitColumns(y, rows: rows, widths: fused.rowCounts(c))
    }
    return try slots.map { slot in
      let (outputs, inputs) = c.shape(of: slot)
      return try project(x, rows: rows, module: p + slot.rawValue, outputs: outputs, inputs: inputs, cache: &cache, layer: &layer)
    }
  }

  /// Logits `[rows, vocabulary]` for sequences stacked as rows, and the cache for `backward`.
  func forward(sequences: [[Int]]) throws -> (logits: [T], cache: Cache) {
    let c = configuration
    let lengths = sequences.map(\.count)
    let tokens = sequences.flatMap { $0 }
    guard !tokens.isEmpty, !lengths.contains(0) else {
      throw TrainingError.invalidInput(operation: "forward", reason: "a sequence is empty")
    }
    for token in tokens where token < 0 || token >= c.vocabularySize {
      throw TrainingError.invalidInput(operation: "forward", reason: "token \(token) is outside the vocabulary of \(c.vocabularySize)")
    }
    let rows = tokens.count
    let hidden = c.hiddenSize
    var cache = Cache(
      tokens: tokens, lengths: lengths, layers: [], finalInput: [], finalInverseRMS: [], finalNormed: [],
      effective: [:], passes: [:])

    // A fake-quantized table is looked up on its grid, as the pack's engine will look it up.
    let table = try effectiveWeight("model.embed_tokens.weight", rows: c.vocabularySize, columns: hidden, cache: &cache)
    var x = TrainingOps.embed(table, width: hidden, tokens: tokens)
    if let scale = c.architecture.embeddingScale { x = x.map { $0 * T(scale) } }
    for index in 0..<c.layerCount {
      let layer = try forwardLayer(
        index: index, prefix: "model.layers.\(index).", x: &x, rows: rows, lengths: lengths, cache: &cache)
      cache.layers.append(layer)
    }
    cache.finalInput = x
    (cache.finalNormed, cache.finalInverseRMS) = try norm(x, rows: rows, name: "model.norm.weight")
    let head = try effectiveWeight(headName, rows: c.vocabularySize, columns: hidden, cache: &cache)
    var logits = try TrainingOps.linear(cache.finalNormed, rows: rows, weight: head, outputs: c.vocabularySize, inputs: hidden)
    if let cap = c.architecture.finalSoftcap {
      TrainingOps.softcap(&logits, cap: T(cap))
      cache.logits = logits
    }
    return (logits, cache)
  }

  /// Layer `index` (the one whose parameters start with `prefix`, e.g. `model.layers.3.`)
  /// applied to `x` in place, `[rows, hiddenSize]`, sequences of `lengths` stacked; returns what
  /// its backward reads.
  func forwardLayer(
    index: Int, prefix p: String, x: inout [T], rows: Int, lengths: [Int], cache: inout Cache
  ) throws -> LayerCache {
    let c = configuration
    let a = c.architecture
    let hidden = c.hiddenSize
    let d = c.headDimension
    let queryWidth = c.headCount * d
    var layer = LayerCache()
    layer.input = x
    (layer.normed1, layer.inverseRMS1) = try norm(x, rows: rows, name: p + "input_layernorm.weight")
    let qkv = try projectStored(
      layer.normed1, rows: rows, prefix: p, slots: [.query, .key, .value], cache: &cache, layer: &layer)
    var q = qkv[0]
    var k = qkv[1]
    layer.values = qkv[2]
    if let queryNorm = a.normSuffix(.query), let keyNorm = a.normSuffix(.key) {
      layer.rawQueries = q
      layer.rawKeys = k
      (q, layer.inverseRMSQueries) = try norm(q, rows: rows * c.headCount, name: p + queryNorm)
      (k, layer.inverseRMSKeys) = try norm(k, rows: rows * c.keyValueHeadCount, name: p + keyNorm)
    }
    if let rope = c.attention(layer: index).rope {
      (layer.cosines, layer.sines) = rotaryTables(lengths: lengths, rope: rope)
      TrainingOps.rotate(&q, rows: rows, heads: c.headCount, headDimension: d, cos: layer.cosines, sin: layer.sines)
      TrainingOps.rotate(&k, rows: rows, heads: c.keyValueHeadCount, headDimension: d, cos: layer.cosines, sin: layer.sines)
    }
    layer.queries = q
    layer.keys = k
    (layer.attention, layer.probabilities) = try TrainingOps.attention(
      queries: q, keys: k, values: layer.values, shape: attentionShape(lengths: lengths, layer: index))
    var attended = try project(layer.attention, rows: rows, module: p + "self_attn.o_proj", outputs: hidden, inputs: queryWidth, cache: &cache, layer: &layer)
    if let outputNorm = a.normSuffix(.attentionOutput) {
      layer.attended = attended
      (attended, layer.inverseRMSAttended) = try norm(attended, rows: rows, name: p + outputNorm)
    }
    TrainingOps.add(attended, to: &x)
    layer.middle = x
    (layer.normed2, layer.inverseRMS2) = try norm(x, rows: rows, name: p + a.mlpInputNormSuffix)
    let gateUp = try projectStored(layer.normed2, rows: rows, prefix: p, slots: [.gate, .up], cache: &cache, layer: &layer)
    layer.gate = gateUp[0]
    layer.up = gateUp[1]
    layer.activated = TrainingOps.gatedActivation(gate: layer.gate, up: layer.up, a.activation)
    var down = try project(layer.activated, rows: rows, module: p + "mlp.down_proj", outputs: hidden, inputs: c.intermediateSize, cache: &cache, layer: &layer)
    if let outputNorm = a.normSuffix(.mlpOutput) {
      layer.down = down
      (down, layer.inverseRMSDown) = try norm(down, rows: rows, name: p + outputNorm)
    }
    TrainingOps.add(down, to: &x)
    return layer
  }
}
