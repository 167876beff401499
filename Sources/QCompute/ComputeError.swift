/// Failures of the numeric layer, each naming the operation and what was wrong.
public enum ComputeError: Error, CustomStringConvertible, Equatable {
  /// Operand shapes that do not fit together.
  case shapeMismatch(operation: String, detail: String)
  /// A LAPACK routine reported failure through its `info` argument.
  case lapack(routine: String, info: Int32)

  public var description: String {
    switch self {
    case .shapeMismatch(let operation, let detail):
      "\(operation): shapes do not match: \(detail)"
    case .lapack(let routine, let info):
      "LAPACK '\(routine)' failed with info \(info)"
    }
  }
}
