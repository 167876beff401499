/// What can go wrong while comparing two checkpoints.
public enum DiffError: Error, CustomStringConvertible, Equatable {
  /// A tensor could not be read to the end (a source returned fewer bytes than its shape needs).
  case shortTensor(location: String, tensor: String, bytes: Int, expected: Int)
  /// `--filter` is not a regular expression.
  case invalidFilter(pattern: String)

  public var description: String {
    switch self {
    case .shortTensor(let location, let tensor, let bytes, let expected):
      "\(location): tensor '\(tensor)' has \(bytes) bytes of data, expected \(expected)"
    case .invalidFilter(let pattern):
      "'--filter' is not a valid regular expression: '\(pattern)'"
    }
  }
}
