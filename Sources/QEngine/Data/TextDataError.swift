/// Failures while reading evaluation or calibration text, each naming the file and line.
public enum TextDataError: Error, CustomStringConvertible, Equatable {
  case unreadable(file: String, reason: String)
  case invalidJSON(file: String, line: Int)
  case missingField(file: String, line: Int, field: String)
  case invalidWindow(context: Int, stride: Int)

  public var description: String {
    switch self {
    case .unreadable(let file, let reason):
      "\(file): \(reason)"
    case .invalidJSON(let file, let line):
      "\(file): line \(line) is not a JSON object"
    case .missingField(let file, let line, let field):
      "\(file): line \(line) has no string field '\(field)'"
    case .invalidWindow(let context, let stride):
      "Window context \(context) and stride \(stride) must be positive with stride <= context"
    }
  }
}
