import QCompute
import QFormats

/// The transformer layers of one checkpoint's language model and the weights layer similarity
/// reads: separate `self_attn.{q,k,v,o}_proj` and `mlp.down_proj` matrices (Llama, Qwen2,
/// Mistral, SmolLM, and the language model of a LLaVA checkpoint, with or without `model.`; q/k/v
/// and gate/up cut from Phi-3's fused `qkv_proj` and `gate_up_proj`), or
/// a BERT-family encoder's `attention.self.{query,key,value}`, `attention.output.dense` and
/// `output.dense`.
public struct DecoderLayers: Sendable {
  /// The members of one layer that similarity reads, by what they do.
  public struct Members: Sendable, Equatable {
    public var query: String
    public var key: String
    public var value: String
    /// The attention output projection (hidden x attention width).
    public var output: String
    /// The MLP's last projection (hidden x intermediate).
    public var down: String

    /// Llama and its relatives.
    public static let decoder = Members(
      query: "self_attn.q_proj.weight", key: "self_attn.k_proj.weight", value: "self_attn.v_proj.weight",
      output: "self_attn.o_proj.weight", down: "mlp.down_proj.weight")
    /// BERT, RoBERTa and their relatives (`encoder.layer.#.`, bare or under `bert.`).
    public static let bertEncoder = Members(
      query: "attention.self.query.weight", key: "attention.self.key.weight",
      value: "attention.self.value.weight", output: "attention.output.dense.weight",
      down: "output.dense.weight")
  }

  public var location: String
  public var source: any TensorSource
  /// Each layer's name prefix (`model.layers.3.`), in layer order.
  public var prefixes: [String]
  public var hiddenSize: Int
  public var heads: Int
  public var kvHeads: Int
  /// How this checkpoint names the members of a layer.
  public var members: Members

  public var count: Int { prefixes.count }
  public var headDim: Int { heads > 0 ? attentionWidth / heads : 0 }
  private var attentionWidth: Int

  /// Finds the layers: the longest stack whose layers have an attention output projection
  /// (`o_proj`, or BERT's `attention.output.dense`) outside a vision tower.
  /// - Throws: `SimilarityError.noDecoderLayers`, `.unknownHeads`, `.layerWeight` for an
  ///   output projection that is not a matrix.
  public init(location: String, source: any TensorSource, architecture: ArchitectureSummary) throws {
    typealias Layer = (index: Int, prefix: String, info: TensorInfo)
    var stacks: [String: (members: Members, layers: [Layer])] = [:]
    for members in [Members.decoder, .bertEncoder] {
      let suffix = members.output
      for info in source.tensors where info.name.hasSuffix("." + suffix) || info.name == suffix {
        guard architecture.component(of: info.name) != .visionTower,
          let place = DiffMatching.LayerPlace(info.name)
        else { continue }
        let prefix = String(info.name.dropLast(suffix.count))
        stacks[place.stack, default: (members, [])].layers.append((place.index, prefix, info))
      }
    }
    guard
      let stack = stacks.values.max(by: { a, b in
        a.layers.count != b.layers.count
          ? a.layers.count < b.layers.count
          : (a.layers.first?.prefix ?? "") > (b.layers.first?.prefix ?? "")
      }),
      case let layers = stack.layers.sorted(by: { $0.index < $1.index }),
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
    self.members = stack.members
  }

  /// Weights a checkpoint may store fused (Phi-3): each part's fused tensor and its index among
  /// the fused tensor's row blocks.
  static let fusedParts: [String: (fused: String, index: Int)] = [
    "self_attn.q_proj.weight": ("self_attn.qkv_proj.weight", 0),
    "self_attn.k_proj.weight": ("self_attn.qkv_proj.weight", 1),
    "self_attn.v_proj.weight": ("self_attn.qkv_proj.weight", 2),
    "mlp.gate_proj.weight": ("mlp.gate_up_proj.weight", 0),
    "mlp.up_proj.weight": ("mlp.gate_up_proj.weight", 1),
  ]

  /// Whether the layers store q/k/v as one `self_attn.qkv_proj` and gate/up as one
  /// `mlp.gate_up_proj` (Phi-3).
  public var storesFusedProjections: Bool {
    prefixes.first.map { source.info(named: $0 + "self_attn.qkv_proj.weight") != nil } ?? false
  }

  /// The rows of each part of the fused weight `fused` (a member name) of `rows` rows in all:
  /// q, k and v by the head counts, gate and up halves.
  func partRows(of fused: String, rows: Int) -> [Int] {
    guard fused == "self_attn.qkv_proj.weight" else { return [rows / 2, rows / 2] }
    let query = heads * headDim
    let key = kvHeads * headDim
    return [query, key, key]
  }

  /// The shape of a layer's member as `[out, in]`; a part of a fused weight gets its rows.
  public func shape(layer: Int, _ member: String) -> [Int]? {
    if let info = source.info(named: prefixes[layer] + member) { return info.shape }
    guard let part = Self.fusedParts[member], let info = source.info(named: prefixes[layer] + part.fused),
      info.shape.count == 2
    else { return nil }
    return [partRows(of: part.fused, rows: info.shape[0])[part.index], info.shape[1]]
  }

  /// One weight of a layer as a matrix (PyTorch layout, out x in); a part of a fused weight
  /// (Phi-3's q, k, v, gate, up) is cut from it.
  /// - Throws: `SimilarityError.layerWeight` when it is missing or not a matrix; read errors.
  public func matrix<Scalar: LinalgScalar>(
    layer: Int, _ member: String, as _: Scalar.Type = Scalar.self
  ) throws -> Matrix<Scalar> {
    let name = prefixes[layer] + member
    if source.info(named: name) == nil, let part = Self.fusedParts[member],
      source.info(named: prefixes[layer] + part.fused) != nil
    {
      let fused: Matrix<Scalar> = try matrix(layer: layer, part.fused)
      let rows = partRows(of: part.fused, rows: fused.rows)
      guard rows.reduce(0, +) == fused.rows else {
        throw SimilarityError.layerWeight(
          location: location, tensor: prefixes[layer] + part.fused,
          detail: "has \(fused.rows) rows, not the \(rows.map(String.init).joined(separator: " + ")) of its parts")
      }
      let start = rows.prefix(part.index).reduce(0, +)
      let elements = Array(fused.elements[(start * fused.columns)..<((start + rows[part.index]) * fused.columns)])
      return try Matrix(rows: rows[part.index], columns: fused.columns, elements: elements)
    }
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
    let o: Matrix<Float> = try matrix(layer: layer, members.output)
    let down: Matrix<Float> = try matrix(layer: layer, members.down)
    for (part, name) in [(o, members.output), (down, members.down)]
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
      try matrix(layer: layer, members.query),
      try matrix(layer: layer, members.key),
      try matrix(layer: layer, members.value),
      try matrix(layer: layer, members.output)
    )
  }
}
