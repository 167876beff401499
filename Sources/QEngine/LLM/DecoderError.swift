/// Failures of the decoder engine and its kernels that `EngineError` does not cover.
public enum DecoderError: Error, CustomStringConvertible, Equatable {
  /// A weight's parts do not fit together (codes, scales, shapes).
  case invalidWeight(location: String, tensor: String, reason: String)
  /// A configuration value is present but unusable.
  case invalidConfig(location: String, key: String, reason: String)
  /// A token id outside the vocabulary.
  case tokenOutOfRange(location: String, token: Int, vocabularySize: Int)
  /// An input the operation cannot work on (empty, too long, mismatched sizes).
  case invalidInput(operation: String, reason: String)

  public var description: String {
    switch self {
    case .invalidWeight(let location, let tensor, let reason):
      "\(location): tensor '\(tensor)' \(reason)"
    case .invalidConfig(let location, let key, let reason):
      "\(location): config '\(key)' \(reason)"
    case .tokenOutOfRange(let location, let token, let vocabularySize):
      "\(location): token \(token) is outside the vocabulary of \(vocabularySize)"
    case .invalidInput(let operation, let reason):
      "\(operation): \(reason)"
    }
  }
}
