/// Failures while loading or applying a tokenizer, each naming the file and what it holds.
public enum TokenizerError: Error, CustomStringConvertible, Equatable {
  /// The file could not be read or is not the JSON expected.
  case unreadable(file: String, reason: String)
  /// A key the tokenizer needs is absent or has the wrong type.
  case missingKey(file: String, key: String)
  /// The model type is neither BPE nor Unigram (for example WordPiece or WordLevel).
  case unsupportedModel(file: String, type: String)
  /// A normalizer, pre-tokenizer, post-processor or decoder this implementation does not know.
  case unsupportedComponent(file: String, component: String, type: String)
  /// A `Split` pre-tokenizer pattern that is not one of the scanners implemented here.
  case unsupportedPattern(file: String, pattern: String)
  /// A merge names a token absent from the vocabulary.
  case mergeOutOfVocabulary(file: String, merge: String)
  /// The chat template is not one of the forms applied without a template engine.
  case unsupportedChatTemplate(file: String, reason: String)
  /// A GGUF tokenizer setting (`tokenizer.ggml.model`, `.pre`) that is not read here.
  case unsupportedGGUFSetting(file: String, key: String, value: String, supported: [String])

  public var description: String {
    switch self {
    case .unreadable(let file, let reason):
      "\(file): \(reason)"
    case .missingKey(let file, let key):
      "\(file): '\(key)' is missing or has the wrong type"
    case .unsupportedModel(let file, let type):
      "\(file): model type '\(type)' is not supported (only 'BPE' and 'Unigram')"
    case .unsupportedComponent(let file, let component, let type):
      "\(file): \(component) '\(type)' is not supported"
    case .unsupportedPattern(let file, let pattern):
      "\(file): pre-tokenizer pattern '\(pattern)' is not supported"
    case .mergeOutOfVocabulary(let file, let merge):
      "\(file): merge '\(merge)' names a token that is not in the vocabulary"
    case .unsupportedChatTemplate(let file, let reason):
      "\(file): chat template is not supported: \(reason)"
    case .unsupportedGGUFSetting(let file, let key, let value, let supported):
      "\(file): \(key) '\(value)' is not supported (supported: \(supported.map { "'\($0)'" }.joined(separator: ", ")))"
    }
  }
}
