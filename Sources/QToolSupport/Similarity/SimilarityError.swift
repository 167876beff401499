/// What can go wrong while comparing the layers of two models.
public enum SimilarityError: Error, CustomStringConvertible, Equatable {
  /// No decoder layers with separate q, k, v, o and down projections were found.
  case noDecoderLayers(location: String)
  /// A layer lacks one of the weights the representation needs, or has it in another shape.
  case layerWeight(location: String, tensor: String, detail: String)
  /// The head counts needed for head mapping are not known (no config states them).
  case unknownHeads(location: String)
  /// The two models have different hidden sizes and one has no `tokenizer.json` to build the
  /// transfer matrix from.
  case missingTokenizer(location: String, hiddenSizes: (old: Int, new: Int))
  /// A `tokenizer.json` without a readable `model.vocab`.
  case unreadableVocabulary(file: String, reason: String)
  /// No token-embedding tensor of shape vocabulary x hidden.
  case noTokenEmbedding(location: String)
  /// The vocabularies share too few tokens for a least-squares map of this width.
  case tooFewSharedTokens(count: Int, hiddenSize: Int)
  /// A layer-mapping file that does not match its format.
  case invalidMappingFile(file: String, reason: String)
  /// A numeric step failed.
  case compute(String)

  public var description: String {
    switch self {
    case .noDecoderLayers(let location):
      "\(location): no layers with 'self_attn.{q,k,v,o}_proj' and 'mlp.down_proj' weights, nor BERT's 'attention.self.{query,key,value}', 'attention.output.dense' and 'output.dense'"
    case .layerWeight(let location, let tensor, let detail):
      "\(location): tensor '\(tensor)' \(detail)"
    case .unknownHeads(let location):
      "\(location): the number of attention heads is unknown (no 'num_attention_heads' in a config.json)"
    case .missingTokenizer(let location, let sizes):
      "\(location): hidden sizes \(sizes.old) and \(sizes.new) differ and there is no 'tokenizer.json' to map between them"
    case .unreadableVocabulary(let file, let reason):
      "\(file): \(reason)"
    case .noTokenEmbedding(let location):
      "\(location): no token-embedding tensor of shape vocabulary x hidden size"
    case .tooFewSharedTokens(let count, let hiddenSize):
      "too few shared tokens (\(count)) for a stable transfer matrix; the old hidden size is \(hiddenSize)"
    case .invalidMappingFile(let file, let reason):
      "\(file): \(reason)"
    case .compute(let message):
      message
    }
  }

  public static func == (a: SimilarityError, b: SimilarityError) -> Bool {
    a.description == b.description
  }
}
