/// Failures of the vision-language model, each naming the model or prompt involved.
public enum VisionLanguageError: Error, CustomStringConvertible, Equatable {
  /// The prompt holds image tokens, but neither one (to expand) nor one per feature row.
  case imageTokenCount(location: String, token: Int, found: Int, featureRows: Int)
  /// The checkpoint's decoder and projector disagree on the width of an embedding.
  case widthMismatch(location: String, projector: Int, decoder: Int)

  public var description: String {
    switch self {
    case .imageTokenCount(let location, let token, let found, let featureRows):
      "\(location): prompt has \(found) image tokens (id \(token)); expected 0, 1 or \(featureRows), one per image feature"
    case .widthMismatch(let location, let projector, let decoder):
      "\(location): projector outputs \(projector) values per image token, the language model's hidden size is \(decoder)"
    }
  }
}
