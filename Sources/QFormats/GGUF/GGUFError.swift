#if canImport(Glibc)
  import Glibc
#endif

/// Everything that can go wrong reading or writing a GGUF file; each message names the file
/// and, where there is one, the key or tensor.
public enum GGUFError: Error, CustomStringConvertible, Equatable {
  /// The file header (magic, version, counts, alignment) is unusable.
  case badHeader(path: String, defect: String)
  /// A metadata key or its value is unusable.
  case badKey(path: String, key: String, defect: String)
  /// A tensor info or its data range is unusable.
  case badTensor(path: String, tensor: String, defect: String)
  /// The file ends before a field that should be there.
  case truncated(path: String, what: String, offset: Int, fileSize: Int)
  /// No tensor of that name is in the file.
  case noSuchTensor(path: String, tensor: String)
  /// A system call failed.
  case system(path: String, call: String, errno: Int32)
  /// The writer was given a plan or data it cannot write.
  case badPlan(path: String, defect: String)
  /// The output path was refused, or appeared meanwhile, when the file was put in place.
  case output(OutputError)

  public var description: String {
    switch self {
    case .badHeader(let path, let defect):
      "\(path): \(defect)"
    case .badKey(let path, let key, let defect):
      "\(path): key '\(key)' \(defect)"
    case .badTensor(let path, let tensor, let defect):
      "\(path): tensor '\(tensor)' \(defect)"
    case .truncated(let path, let what, let offset, let fileSize):
      "\(path): file is truncated: \(what) at offset \(offset) runs past the end (file size \(fileSize))"
    case .noSuchTensor(let path, let tensor):
      "\(path): no tensor named '\(tensor)'"
    case .system(let path, let call, let code):
      "\(path): \(call) failed: \(String(cString: strerror(code)))"
    case .badPlan(let path, let defect):
      "\(path): \(defect)"
    case .output(let error):
      error.description
    }
  }
}
