/// Failures of the model engine, each naming the model, tensor or input involved.
public enum EngineError: Error, CustomStringConvertible, Equatable {
  /// A tensor the architecture needs is absent from the checkpoint.
  case missingTensor(location: String, tensor: String)
  /// A tensor has a shape the configuration does not allow.
  case unexpectedShape(location: String, tensor: String, expected: [Int], found: [Int])
  /// The configuration lacks a value the engine cannot infer.
  case missingConfig(location: String, key: String)
  /// The model's architecture is not one the engine runs.
  case unsupportedArchitecture(location: String, family: String)
  /// The config's `model_type` (absent when `nil`) is not a decoder the engine implements, or
  /// `reason` names a setting of it the engine does not honour.
  case unsupportedModelType(location: String, modelType: String?, reason: String?)

  public var description: String {
    switch self {
    case .missingTensor(let location, let tensor):
      "\(location): tensor '\(tensor)' is missing"
    case .unexpectedShape(let location, let tensor, let expected, let found):
      "\(location): tensor '\(tensor)' has shape \(found), expected \(expected)"
    case .missingConfig(let location, let key):
      "\(location): config has no '\(key)'"
    case .unsupportedArchitecture(let location, let family):
      "\(location): architecture '\(family)' is not supported by the engine"
    case .unsupportedModelType(let location, let modelType, let reason):
      "\(location): "
        + (modelType.map { "model_type '\($0)'" + (reason.map { " with \($0)" } ?? "")
          + " is not supported" + (reason == nil ? "" : " (no sliding-window attention)") }
          ?? "config has no 'model_type'")
        + "; the engine runs model_type "
        + DecoderFamily.supportedModelTypes.map { "'\($0)'" }.joined(separator: ", ")
    }
  }
}
