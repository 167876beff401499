/// Why a SPEED-Q stage could not run.
public enum SpeedQError: Error, CustomStringConvertible, Equatable {
  /// The inputs do not fit together (no windows, shapes that disagree, bad settings).
  case invalidInput(operation: String, reason: String)
  /// A resume checkpoint that belongs to another run or is missing a tensor.
  case checkpoint(path: String, reason: String)
  /// A weight the grid cannot take (group or scale counts that do not divide).
  case quantization(tensor: String, reason: String)

  public var description: String {
    switch self {
    case .invalidInput(let operation, let reason): "\(operation): \(reason)"
    case .checkpoint(let path, let reason): "\(path): \(reason)"
    case .quantization(let tensor, let reason): "tensor '\(tensor)': \(reason)"
    }
  }
}
