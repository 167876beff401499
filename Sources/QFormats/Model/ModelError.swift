/// Failures reading a model's description (config.json), each naming the file.
public enum ModelError: Error, CustomStringConvertible, Equatable {
  /// The file is not valid JSON.
  case invalidJSON(location: String, detail: String)
  /// The top level (or a nested config) is not a JSON object.
  case notAnObject(location: String, key: String?)
  /// A known key holds a value of the wrong type.
  case wrongType(location: String, key: String, expected: String, found: String)
  /// A key's value is of the right type but impossible, alone or beside the weights
  /// (a negative layer count, heads that do not divide the hidden size).
  case invalidValue(location: String, key: String, reason: String)

  public var description: String {
    switch self {
    case .invalidJSON(let location, let detail):
      "\(location): not valid JSON: \(detail)"
    case .notAnObject(let location, let key?):
      "\(location): '\(key)' is not a JSON object"
    case .notAnObject(let location, nil):
      "\(location): the top level is not a JSON object"
    case .wrongType(let location, let key, let expected, let found):
      "\(location): '\(key)' should be \(expected) but is \(found)"
    case .invalidValue(let location, let key, let reason):
      "\(location): '\(key)' \(reason)"
    }
  }
}
