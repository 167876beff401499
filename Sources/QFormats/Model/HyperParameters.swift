/// The sizes that describe a transformer stack; `nil` where neither config nor shapes tell.
public struct HyperParameters: Sendable, Hashable, Codable {
  public var hiddenSize: Int?
  public var layerCount: Int?
  public var vocabSize: Int?
  public var intermediateSize: Int?
  public var attentionHeads: Int?
  public var keyValueHeads: Int?
  public var headDim: Int?

  public init(
    hiddenSize: Int? = nil, layerCount: Int? = nil, vocabSize: Int? = nil,
    intermediateSize: Int? = nil, attentionHeads: Int? = nil, keyValueHeads: Int? = nil,
    headDim: Int? = nil
  ) {
    self.hiddenSize = hiddenSize
    self.layerCount = layerCount
    self.vocabSize = vocabSize
    self.intermediateSize = intermediateSize
    self.attentionHeads = attentionHeads
    self.keyValueHeads = keyValueHeads
    self.headDim = headDim
  }

  /// The values a config states, under the key spellings families use for them.
  ///
  /// Qwen2-VL's vision config says `embed_dim`, `depth` and `num_heads`, and uses `hidden_size`
  /// for the merger's output, so `embed_dim` wins over `hidden_size`.
  init(config: ModelConfig, fallbackVocabSize: Int? = nil) {
    hiddenSize = config.int("embed_dim") ?? config.hiddenSize
    layerCount = config.numHiddenLayers ?? config.int("depth") ?? config.int("num_layers")
    vocabSize = config.vocabSize ?? fallbackVocabSize
    attentionHeads = config.numAttentionHeads ?? config.int("num_heads")
    keyValueHeads = config.numKeyValueHeads
    headDim = config.headDim
    intermediateSize = config.intermediateSize
    if intermediateSize == nil, let ratio = config.raw["mlp_ratio"]?.doubleValue, let hidden = hiddenSize {
      let product = ratio * Double(hidden)
      if product.rounded() == product, let exact = Int(exactly: product) { intermediateSize = exact }
    }
  }

  /// Fills the values still missing from `other`.
  mutating func fillGaps(from other: HyperParameters) {
    hiddenSize = hiddenSize ?? other.hiddenSize
    layerCount = layerCount ?? other.layerCount
    vocabSize = vocabSize ?? other.vocabSize
    intermediateSize = intermediateSize ?? other.intermediateSize
    attentionHeads = attentionHeads ?? other.attentionHeads
    keyValueHeads = keyValueHeads ?? other.keyValueHeads
    headDim = headDim ?? other.headDim
  }
}
