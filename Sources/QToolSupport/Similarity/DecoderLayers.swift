import QCompute
import QFormats

/// The decoder layers of one checkpoint's language model and the weights layer similarity reads:
/// separate `self_attn.{q,k,v,o}_proj` and `mlp.down_proj` matrices (Llama, Qwen2, Mistral,
/// SmolLM, and the language model of a LLaVA checkpoint).
public struct DecoderLayers: Sendable {
  public var location: String
  public var source: any TensorSource
  /// Each layer's name prefix (`model.layers.3.`), in layer order.
  public var prefixes: [String]
  public var hiddenSize: Int
  public var heads: Int
  public var kvHeads: Int

  public var count: Int { prefixes.count }
  public var headDim: Int { heads > 0 ? attentionWidth / heads : 0 }
  private var attentionWidth: Int

  /// Finds the layers: the longest stack whose layers have an `o_proj` outside a vision tower.
  /// - Throws: `SimilarityError.noDecoderLayers`, `.unknownHeads`, `.layerWeight` for an
  ///   `o_proj` that is not a matrix.
  public init(location: String, source: any TensorSource, architecture: ArchitectureSummary) throws {
    let suffix = "self_attn.o_proj.weight"
    var stacks: [String: [(index: Int, prefix: String, info: TensorInfo)]] = [:]
    for info in source.tensors where info.name.hasSuffix(suffix) {
      guard architecture.component(of: info.name) != .visionTower,
        let place = DiffMatching.LayerPlace(info.name)
      else { continue }
      let prefix = String(info.name.dropLast(suffix.count))
      stacks[place.stack, default: []].append((place.index, prefix, info))
    }
    guard
      let layers = stacks.values.max(by: { a, b in
        a.count != b.count ? a.count < b.count : (a.first?.prefix ?? "") > (b.first?.prefix ?? "")
      })?.sorted(by: { $0.index < $1.index }),
      let first = layers.first
    else { throw SimilarityError.noDecoderLayers(location: location) }
    guard first.info.shape.count == 2 else {
      throw SimilarityError.layerWeight(
        location: location, tensor: first.info.name, detail: "has shape \(first.info.shape), expected a matrix")
    }
    let parameters = architecture.language ?? architecture.hyperParameters
    guard let heads = parameters.attentionHeads, heads > 0 else {
      throw SimilarityError.unknownHeads(location: location)
    }
    self.location = location
    self.source = source
    self.prefixes = layers.map(\.prefix)
    self.hiddenSize = first.info.shape[0]
    self.attentionWidth = first.info.shape[1]
    self.heads = heads
    self.kvHeads = parameters.keyValueHeads ?? heads
  }

  /// One weight of a layer as a matrix (PyTorch layout, out x in).
  /// - Throws: `SimilarityError.layerWeight` when it is missing or not a matrix; read errors.
  public func matrix<Scalar: LinalgScalar>(
    layer: Int, _ member: String, as _: Scalar.Type = Scalar.self
  ) throws -> Matrix<Scalar> {
    let name = prefixes[layer] + member
    guard let info = source.info(named: name) else {
      throw SimilarityError.layerWeight(location: location, tensor: name, detail: "is missing")
    }
    guard info.shape.count == 2 else {
      throw SimilarityError.layerWeight(
        location: location, tensor: name, detail: "has shape \(info.shape), expected a matrix")
    }
    let values = try source.floats(of: name)
    return try Matrix(rows: info.shape[0], columns: info.shape[1], elements: values.map { Scalar($0) })
  }

  /// What the layer writes into the residual stream, `[o_proj | down_proj]` (hidden x
  /// (attention + intermediate)): the weight representation `CKAMatrix.fromWeights` compares.
  /// - Throws: `SimilarityError.layerWeight` when a weight is missing or does not have
  ///   `hiddenSize` rows.
  public func residualWrites(layer: Int) throws -> Matrix<Float> {
    let o: Matrix<Float> = try matrix(layer: layer, "self_attn.o_proj.weight")
    let down: Matrix<Float> = try matrix(layer: layer, "mlp.down_proj.weight")
    for (part, name) in [(o, "self_attn.o_proj.weight"), (down, "mlp.down_proj.weight")]
    where part.rows != hiddenSize {
      throw SimilarityError.layerWeight(
        location: location, tensor: prefixes[layer] + name,
        detail: "has \(part.rows) rows, expected the hidden size \(hiddenSize)")
    }
    let width = o.columns + down.columns
    var elements = [Float](repeating: 0, count: hiddenSize * width)
    for r in 0..<hiddenSize {
      for c in 0..<o.columns { elements[r * width + c] = o[r, c] }
      for c in 0..<down.columns { elements[r * width + o.columns + c] = down[r, c] }
    }
    return try Matrix(rows: hiddenSize, columns: width, elements: elements)
  }

  /// The layer's q, k, v and o projections, for `HeadMapping.map`.
  public func attention(layer: Int) throws -> (q: Matrix<Double>, k: Matrix<Double>, v: Matrix<Double>, o: Matrix<Double>) {
    (
      try matrix(layer: layer, "self_attn.q_proj.weight"),
      try matrix(layer: layer, "self_attn.k_proj.weight"),
      try matrix(layer: layer, "self_attn.v_proj.weight"),
      try matrix(layer: layer, "self_attn.o_proj.weight")
    )
  }
}
