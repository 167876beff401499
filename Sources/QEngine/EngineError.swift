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
  /// `reason` names its sliding-window setting, which the engine does not honour.
  case unsupportedModelType(location: String, modelType: String?, reason: String?)
  /// A GGUF file the engine cannot run: its architecture, or a setting of it, is not implemented.
  case unsupportedGGUF(location: String, reason: String)
  /// A GGUF metadata key the engine needs is absent or unusable.
  case invalidGGUFMetadata(location: String, key: String, reason: String)

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
      "\(location): \(Self.refusal(modelType: modelType, reason: reason)); the engine runs model_type "
        + DecoderFamily.supportedModelTypes.map { "'\($0)'" }.joined(separator: ", ")
    case .unsupportedGGUF(let location, let reason):
      "\(location): \(reason)"
    case .invalidGGUFMetadata(let location, let key, let reason):
      "\(location): GGUF key '\(key)' \(reason)"
    }
  }

  /// What is wrong with a config's `model_type`, for `unsupportedModelType`.
  private static func refusal(modelType: String?, reason: String?) -> String {
    guard let modelType else { return "config has no 'model_type'" }
    guard let reason else { return "model_type '\(modelType)' is not supported" }
    return "model_type '\(modelType)' with \(reason) is not supported"
  }
}
