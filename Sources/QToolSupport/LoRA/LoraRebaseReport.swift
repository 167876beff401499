/// What `lora-rebase` did, for the table and JSON outputs (`Formats/lora-rebase-report.md`).
public struct LoraRebaseReport: Sendable, Codable, Equatable {
  public struct Transfer: Sendable, Codable, Equatable {
    /// `identity` (same hidden size, and the same vocabulary or no tokenizer) or
    /// `shared-tokens` (least squares over the shared tokens' input embeddings).
    public var kind: String
    public var oldHidden: Int
    public var newHidden: Int
    public var sharedTokens: Int?
  }

  public struct Module: Sendable, Codable, Equatable {
    public var newLayer: Int
    public var oldLayer: Int
    public var module: String
    /// `‖scale · B A‖_F` of the old module.
    public var normBefore: Double
    /// `‖scale · B A‖_F` of the moved module.
    public var normAfter: Double
    /// `normAfter / normBefore`: the share of the old update this new module keeps.
    public var kept: Double
  }

  public struct Heads: Sendable, Codable, Equatable {
    public var newLayer: Int
    public var oldLayer: Int
    /// For each new query head, its old head (nil: none).
    public var newToOld: [Int?]
    /// Summed cosine similarity of the assigned pairs (nil when the map came from a file).
    public var similarity: Double?
  }

  public var oldBase: String
  public var newBase: String
  public var adapter: String
  public var output: String?
  public var rank: Int
  public var alpha: Double
  /// `paper` or `normalized`.
  public var headTransform: String
  public var transfer: Transfer
  /// `weight-cka` or `file`.
  public var layerSource: String
  /// For each new layer, its old layer (nil: no update).
  public var layers: [Int?]
  public var heads: [Heads]
  public var modules: [Module]
  /// Old modules left out: unmapped layers and, with `--skip-unsupported`, unsupported modules.
  public var dropped: [String]
  /// Old layers × new layers CKA the layer map came from (null where a layer has no variation).
  public var cka: [[Double?]]
}
