/// Failures of training: shapes that do not fit, unknown parameters, inputs the graph cannot take.
public enum TrainingError: Error, CustomStringConvertible, Equatable {
  /// Two buffers an operation combines have sizes that do not agree.
  case shapeMismatch(operation: String, detail: String)
  /// A parameter name the decoder does not hold.
  case unknownParameter(name: String)
  /// An input the operation cannot work on (empty batch, token outside the vocabulary).
  case invalidInput(operation: String, reason: String)

  public var description: String {
    switch self {
    case .shapeMismatch(let operation, let detail): "\(operation): \(detail)"
    case .unknownParameter(let name): "parameter '\(name)' is not part of the decoder"
    case .invalidInput(let operation, let reason): "\(operation): \(reason)"
    }
  }
}
