import QFormats

/// What can go wrong while moving an adapter, each case naming the file, key or shapes involved.
public enum LoraRebaseError: Error, CustomStringConvertible, Equatable {
  /// An adapter folder or file that cannot be read as a PEFT LoRA adapter.
  case adapter(path: String, detail: String)
  /// A base model whose config or tensors cannot be used.
  case baseModel(path: String, detail: String)
  /// The adapter's update does not fit the named base weight of OLD_BASE.
  case baseMismatch(key: String, adapterShape: [Int], baseTensor: String, baseShape: [Int]?)
  /// A module type the transforms do not cover.
  case unsupportedModule(key: String)
  /// Too few token strings shared by both vocabularies for a stable transfer matrix.
  case tooFewSharedTokens(shared: Int, needed: Int, old: String, new: String)
  /// A `--mapping` file that does not follow the format.
  case mapping(path: String, detail: String)
  /// A `--data` text that cannot give the activation CKA.
  case data(path: String, detail: String)
  /// The output folder cannot be written.
  case output(path: String, detail: String)
  /// The output path was refused (see `OutputDestination`), or appeared while the run worked.
  case outputRefused(OutputError)

  public var description: String {
    switch self {
    case .adapter(let path, let detail): "\(path): \(detail)"
    case .baseModel(let path, let detail): "\(path): \(detail)"
    case .baseMismatch(let key, let adapterShape, let baseTensor, let baseShape):
      if let baseShape {
        "Adapter tensor '\(key)' implies a \(shape(adapterShape)) update, but base tensor '\(baseTensor)' is \(shape(baseShape)); is OLD_BASE the model the adapter was trained on?"
      } else {
        "Adapter tensor '\(key)' has no base tensor '\(baseTensor)' in OLD_BASE; is OLD_BASE the model the adapter was trained on?"
      }
    case .unsupportedModule(let key):
      "Cannot transfer module '\(key)' (supported: q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj); pass --skip-unsupported to leave it out"
    case .tooFewSharedTokens(let shared, let needed, let old, let new):
      "Only \(shared) token strings are shared by '\(old)' and '\(new)'; a stable transfer matrix needs at least \(needed) (twice the old hidden size)"
    case .mapping(let path, let detail): "\(path): \(detail)"
    case .data(let path, let detail): "\(path): \(detail)"
    case .output(let path, let detail): "\(path): \(detail)"
    case .outputRefused(let error): error.description
    }
  }

  private func shape(_ dims: [Int]) -> String { "[" + dims.map(String.init).joined(separator: ", ") + "]" }
}
