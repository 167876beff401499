/// Two language models run on the same text: what `qdiff --data` reports as `data`
/// (`Formats/qdiff-output.md`). Field names are part of the tool's interface.
public struct DataComparisonResult: Codable, Sendable {
  /// The text file.
  public var text: String
  /// `shared` when both tokenizers have the same vocabulary and give the same ids for the text
  /// (both models read the same ids), `separate` otherwise (each model reads its own ids of the
  /// same text pieces).
  public var tokenization: String
  public var context: Int
  public var windows: Int
  public var old: Side
  public var new: Side
  /// Positions whose next-token distributions were compared (`shared` only).
  public var comparedPositions: Int?
  /// Mean over compared positions of KL(old || new), in nats.
  public var meanKL: Double?
  /// The largest KL(old || new) at one position, in nats.
  public var maxKL: Double?
  /// Share of compared positions where both models' most likely next token is the same.
  public var top1Agreement: Double?
  /// Why KL and agreement are absent (`separate` tokenization).
  public var tokenMetricsNote: String?
  /// Per layer: mean over tokens of the cosine between the two models' hidden states.
  public var layers: [LayerCosine]
  /// Why `layers` is empty, when it is.
  public var layersNote: String?
  /// Linear CKA between every old and every new layer from hidden states (minibatch, unbiased
  /// HSIC), the layer mapping and the head mappings (`Formats/layer-mapping.md`).
  public var layerSimilarity: LayerSimilarity?
  /// Rows of the activation matrices CKA compared: tokens (`shared`) or text pieces (`separate`).
  public var activationExamples: Int
  /// KL exactly 0 and top-1 agreement exactly 1: the models predict the same on this text.
  public var same: Bool
  public var seconds: Double

  /// One model's score on the text.
  public struct Side: Codable, Sendable {
    public var perplexity: Double
    /// Mean negative log-likelihood per scored token, in nats.
    public var meanNLL: Double
    /// Total negative log-likelihood in bits over the bytes of the scored tokens' text, which
    /// compares models with different tokenizers.
    public var bitsPerByte: Double?
    public var scoredTokens: Int
    public var scoredBytes: Int
    /// Ids of the whole text under this side's tokenizer.
    public var textTokens: Int
    public var layers: Int
    public var hiddenSize: Int

    enum CodingKeys: String, CodingKey {
      case perplexity
      case meanNLL = "mean_nll"
      case bitsPerByte = "bits_per_byte"
      case scoredTokens = "scored_tokens"
      case scoredBytes = "scored_bytes"
      case textTokens = "text_tokens"
      case layers
      case hiddenSize = "hidden_size"
    }
  }

  /// The hidden-state cosine of one new layer and its old layer.
  public struct LayerCosine: Codable, Sendable, Equatable {
    public var old: Int
    public var new: Int
    /// Mean over tokens of a.b / (|a| |b|); absent when no token had two non-zero states.
    public var cosine: Double?
  }

  enum CodingKeys: String, CodingKey {
    case text, tokenization, context, windows, old, new
    case comparedPositions = "compared_positions"
    case meanKL = "mean_kl"
    case maxKL = "max_kl"
    case top1Agreement = "top1_agreement"
    case tokenMetricsNote = "token_metrics_note"
    case layers
    case layersNote = "layers_note"
    case layerSimilarity = "layer_similarity"
    case activationExamples = "activation_examples"
    case same, seconds
  }
}
