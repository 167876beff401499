import QCompute
import QFormats

/// Layer similarity between two models: the CKA matrix, the order-preserving layer mapping and,
/// per mapped pair, the attention-head mapping. Its coded form is `layer_similarity` in
/// `qdiff --format json` and the body of a `--save-mapping` file (`Formats/layer-mapping.md`).
public struct LayerSimilarity: Codable, Sendable, Equatable {
  /// `weights`, or `activations` once the model engine runs both models on data.
  public var source: String
  /// What represents a layer: `residual-writes` (`[o_proj | down_proj]`, hidden x features) for
  /// weights, `hidden-states` for activations.
  public var representation: String
  public var old: ModelShape
  public var new: ModelShape
  public var transfer: TransferEntry
  /// Linear CKA, old layers x new layers; null where a layer has no variation.
  public var matrix: [[Double?]]
  /// One entry per new layer, in order.
  public var mapping: [LayerPair]
  /// One entry per mapped layer pair, in new-layer order.
  public var heads: [HeadPair]

  /// The sizes of one side that the mappings are about.
  public struct ModelShape: Codable, Sendable, Equatable {
    public var layers: Int
    public var hiddenSize: Int
    public var heads: Int
    public var kvHeads: Int
    public var headDim: Int

    enum CodingKeys: String, CodingKey {
      case layers
      case hiddenSize = "hidden_size"
      case heads
      case kvHeads = "kv_heads"
      case headDim = "head_dim"
    }
  }

  /// How old hidden vectors were brought into the new model's basis.
  public struct TransferEntry: Codable, Sendable, Equatable {
    /// `identity` (same hidden size and vocabulary) or `shared-tokens` (least squares between
    /// the input embeddings of the token strings both vocabularies hold).
    public var kind: String
    public var sharedTokens: Int?

    enum CodingKeys: String, CodingKey {
      case kind
      case sharedTokens = "shared_tokens"
    }
  }

  /// A new layer and the old layer mapped onto it (none when the new model is deeper).
  public struct LayerPair: Codable, Sendable, Equatable {
    public var new: Int
    public var old: Int?
    public var cka: Double?
  }

  /// The head mapping of one mapped layer pair.
  public struct HeadPair: Codable, Sendable, Equatable {
    public var oldLayer: Int
    public var newLayer: Int
    /// For each new head, its old head (null: no old head, its update stays zero).
    public var newToOld: [Int?]
    /// For each old head, its new head (null: a surplus old head).
    public var oldToNew: [Int?]
    /// Cosine similarity of the per-head QK and VO products, old heads x new heads.
    public var similarity: [[Double?]]
    public var totalSimilarity: Double

    enum CodingKeys: String, CodingKey {
      case oldLayer = "old_layer"
      case newLayer = "new_layer"
      case newToOld = "new_to_old"
      case oldToNew = "old_to_new"
      case similarity
      case totalSimilarity = "total_similarity"
    }
  }

  /// For each new layer, its old layer (the `LayerMapping.orderPreserving` layout).
  public var newToOld: [Int?] { mapping.map(\.old) }

  /// The CKA matrix as numbers, NaN where null.
  public var ckaMatrix: Matrix<Double> { Self.matrix(from: matrix) }

  static func rows(_ m: Matrix<Double>) -> [[Double?]] {
    (0..<m.rows).map { i in (0..<m.columns).map { j in m[i, j].isFinite ? m[i, j] : nil } }
  }

  static func matrix(from rows: [[Double?]]) -> Matrix<Double> {
    var result = Matrix<Double>(rows: rows.count, columns: rows.first?.count ?? 0)
    for (i, row) in rows.enumerated() {
      for (j, value) in row.enumerated() where j < result.columns { result[i, j] = value ?? .nan }
    }
    return result
  }
}

extension LayerSimilarity {
  /// Layer similarity from weights alone: CKA between the layers' residual writes, in the new
  /// model's hidden basis through `transfer` when the widths differ.
  /// - Throws: `SimilarityError` for missing weights or shapes that do not fit.
  public static func fromWeights(
    old: DecoderLayers, new: DecoderLayers, transfer: TransferMatrix.Fit?
  ) throws -> LayerSimilarity {
    let oldWrites = try (0..<old.count).map { try old.residualWrites(layer: $0) }
    let newWrites = try (0..<new.count).map { try new.residualWrites(layer: $0) }
    let floatTransfer = try transfer.map { try floatMatrix($0.matrix) }
    let cka = try compute {
      try CKAMatrix.fromWeights(old: oldWrites, new: newWrites, transfer: floatTransfer)
    }
    return try finish(
      cka: cka, source: "weights", representation: "residual-writes", old: old, new: new,
      transfer: transfer)
  }

  /// Layer similarity from activations: `old[i]` and `new[j]` are examples x features hidden
  /// states of each layer on the same tokens (minibatch linear CKA, unbiased HSIC); the head
  /// mappings still come from the weights. This is the hook `--data` will call once the model
  /// engine produces hidden states.
  /// - Throws: `SimilarityError` when the activations do not fit the layer counts.
  public static func fromActivations(
    old: [Matrix<Float>], new: [Matrix<Float>], batchSize: Int?,
    layers: (old: DecoderLayers, new: DecoderLayers), transfer: TransferMatrix.Fit?
  ) throws -> LayerSimilarity {
    guard old.count == layers.old.count, new.count == layers.new.count else {
      throw SimilarityError.compute(
        "activations of \(old.count) and \(new.count) layers for models of \(layers.old.count) and \(layers.new.count)")
    }
    let cka = try compute { try CKAMatrix.fromActivations(old: old, new: new, batchSize: batchSize) }
    return try finish(
      cka: cka, source: "activations", representation: "hidden-states", old: layers.old,
      new: layers.new, transfer: transfer)
  }

  /// The layer mapping from `cka` and the head mapping of every mapped pair.
  static func finish(
    cka: Matrix<Double>, source: String, representation: String, old: DecoderLayers,
    new: DecoderLayers, transfer: TransferMatrix.Fit?
  ) throws -> LayerSimilarity {
    let newToOld = LayerMapping.orderPreserving(cka)
    var heads: [HeadPair] = []
    for (newLayer, oldLayer) in newToOld.enumerated() {
      guard let oldLayer else { continue }
      let a = try old.attention(layer: oldLayer)
      let b = try new.attention(layer: newLayer)
      let result = try compute {
        try HeadMapping.map(
          oldQ: a.q, oldK: a.k, oldV: a.v, oldO: a.o, newQ: b.q, newK: b.k, newV: b.v, newO: b.o,
          heads: (old.heads, new.heads), kvHeads: (old.kvHeads, new.kvHeads),
          transfer: transfer?.matrix)
      }
      heads.append(
        HeadPair(
          oldLayer: oldLayer, newLayer: newLayer, newToOld: result.newToOld,
          oldToNew: result.oldToNew, similarity: rows(result.similarity),
          totalSimilarity: result.totalSimilarity))
    }
    func shape(_ layers: DecoderLayers) -> ModelShape {
      ModelShape(
        layers: layers.count, hiddenSize: layers.hiddenSize, heads: layers.heads,
        kvHeads: layers.kvHeads, headDim: layers.headDim)
    }
    return LayerSimilarity(
      source: source, representation: representation, old: shape(old), new: shape(new),
      transfer: TransferEntry(
        kind: transfer == nil ? "identity" : "shared-tokens", sharedTokens: transfer?.sharedTokens),
      matrix: rows(cka),
      mapping: newToOld.enumerated().map { newLayer, oldLayer in
        LayerPair(
          new: newLayer, old: oldLayer,
          cka: oldLayer.flatMap { cka[$0, newLayer].isFinite ? cka[$0, newLayer] : nil })
      },
      heads: heads)
  }

  private static func compute<T>(_ body: () throws -> T) throws -> T {
    do { return try body() } catch let error as ComputeError {
      throw SimilarityError.compute("layer similarity: \(error)")
    }
  }

  private static func floatMatrix(_ m: Matrix<Double>) throws -> Matrix<Float> {
    try Matrix(rows: m.rows, columns: m.columns, elements: m.elements.map { Float($0) })
  }
}
