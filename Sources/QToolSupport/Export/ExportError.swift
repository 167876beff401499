/// Why an export to another runtime's layout (MLX, GGUF) failed.
public enum ExportError: Error, CustomStringConvertible, Equatable {
  /// The export needs a config.json value the checkpoint does not have.
  case missingConfig(location: String, key: String)
  /// A config.json value is present but unusable.
  case invalidConfig(location: String, key: String, reason: String)
  /// A tensor has no place in the target layout.
  case unsupportedTensor(location: String, tensor: String, reason: String)
  /// Requested bits or group size that the target runtime cannot load.
  case unsupportedSettings(location: String, tensor: String?, reason: String)
  /// A file operation on the output failed.
  case output(path: String, reason: String)

  public var description: String {
    switch self {
    case .missingConfig(let location, let key):
      "\(location): config.json has no '\(key)'"
    case .invalidConfig(let location, let key, let reason):
      "\(location): config.json '\(key)' \(reason)"
    case .unsupportedTensor(let location, let tensor, let reason):
      "\(location): tensor '\(tensor)' \(reason)"
    case .unsupportedSettings(let location, let tensor?, let reason):
      "\(location): tensor '\(tensor)': \(reason)"
    case .unsupportedSettings(let location, nil, let reason):
      "\(location): \(reason)"
    case .output(let path, let reason):
      "\(path): \(reason)"
    }
  }
}

/// Where an export is: which output tensor it is writing, of how many.
public struct ExportProgress: Sendable, Hashable {
  /// The tensor being written, as named in the output.
  public var tensor: String
  /// Zero-based position among the output tensors.
  public var index: Int
  public var count: Int
}
