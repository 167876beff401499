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

  /// The text behind an activation layer map.
  public struct LayerData: Sendable, Codable, Equatable {
    public var text: String
    /// `shared` (both bases read the same ids; every token an example) or `separate` (each
    /// reads its own ids of the same text pieces; each piece's mean hidden state an example).
    public var tokenization: String
    public var windows: Int
    /// Rows of each layer's activation matrix.
    public var examples: Int
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
  /// `weight-cka`, `activation-cka` (`--data`) or `file`.
  public var layerSource: String
  /// The text of `--data`, with `activation-cka`.
  public var layerData: LayerData?
  /// For each new layer, its old layer (nil: no update).
  public var layers: [Int?]
  public var heads: [Heads]
  public var modules: [Module]
  /// Old modules left out: unmapped layers and, with `--skip-unsupported`, unsupported modules.
  public var dropped: [String]
  /// Old layers × new layers CKA the layer map came from (null where a layer has no variation).
  public var cka: [[Double?]]
}
