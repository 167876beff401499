/// What can stop the fine-tuning after a move, each case naming the file or module involved.
public enum LoRAFinetuneError: Error, CustomStringConvertible, Equatable {
  /// The new base cannot be loaded for training.
  case baseModel(path: String, detail: String)
  /// A training or evaluation text that cannot give a window.
  case data(path: String, detail: String)
  /// The adapter does not fit the new base's modules.
  case adapter(module: String, detail: String)

  public var description: String {
    switch self {
    case .baseModel(let path, let detail): "\(path): \(detail)"
    case .data(let path, let detail): "\(path): \(detail)"
    case .adapter(let module, let detail): "Adapter module '\(module)': \(detail)"
    }
  }
}
