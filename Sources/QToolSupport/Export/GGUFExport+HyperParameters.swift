import QFormats

extension GGUFExport {
  /// The config.json values llama.cpp's `llama.*` keys hold.
  struct LlamaHyperParameters {
    var contextLength: Int
    var embeddingLength: Int
    var blockCount: Int
    var feedForwardLength: Int
    var heads: Int
    var keyValueHeads: Int
    var headDim: Int
    var ropeFreqBase: Double
    var rmsEpsilon: Double
    var vocabSize: Int
    var tiedEmbeddings: Bool

    init(config: ModelConfig, location: String) throws {
      func require(_ value: Int?, _ key: String) throws -> Int {
        guard let value else { throw ExportError.missingConfig(location: location, key: key) }
        guard value > 0, value <= Int(UInt32.max) else {
          throw ExportError.invalidConfig(location: location, key: key, reason: "is \(value)")
        }
        return value
      }
      contextLength = try require(config.maxPositionEmbeddings, "max_position_embeddings")
      embeddingLength = try require(config.hiddenSize, "hidden_size")
      blockCount = try require(config.numHiddenLayers, "num_hidden_layers")
      feedForwardLength = try require(config.intermediateSize, "intermediate_size")
      heads = try require(config.numAttentionHeads, "num_attention_heads")
      keyValueHeads = try require(config.numKeyValueHeads ?? heads, "num_key_value_heads")
      guard config.headDim != nil || embeddingLength % heads == 0 else {
        throw ExportError.invalidConfig(
          location: location, key: "hidden_size",
          reason: "is not a multiple of num_attention_heads \(heads)")
      }
      headDim = try require(config.headDim ?? embeddingLength / heads, "head_dim")
      vocabSize = try require(config.vocabSize, "vocab_size")
      ropeFreqBase = config.ropeTheta ?? 10_000
      rmsEpsilon = config.raw["rms_norm_eps"]?.doubleValue ?? 1e-6
      tiedEmbeddings = config.tieWordEmbeddings ?? false
    }

    /// The keys in the order llama.cpp's converter writes them.
    var keyValues: [(key: String, value: GGUFValue)] {
      var values: [(key: String, value: GGUFValue)] = [
        ("llama.vocab_size", .uint32(UInt32(vocabSize))),
        ("llama.context_length", .uint32(UInt32(contextLength))),
        ("llama.embedding_length", .uint32(UInt32(embeddingLength))),
        ("llama.block_count", .uint32(UInt32(blockCount))),
        ("llama.feed_forward_length", .uint32(UInt32(feedForwardLength))),
        ("llama.rope.dimension_count", .uint32(UInt32(headDim))),
        ("llama.attention.head_count", .uint32(UInt32(heads))),
        ("llama.attention.head_count_kv", .uint32(UInt32(keyValueHeads))),
        ("llama.rope.freq_base", .float32(Float(ropeFreqBase))),
        ("llama.attention.layer_norm_rms_epsilon", .float32(Float(rmsEpsilon))),
      ]
      if headDim * heads != embeddingLength {
        values.append(("llama.attention.key_length", .uint32(UInt32(headDim))))
        values.append(("llama.attention.value_length", .uint32(UInt32(headDim))))
      }
      return values
    }
  }
}
