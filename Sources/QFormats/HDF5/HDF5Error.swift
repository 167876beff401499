import Foundation

/// Failures reading or writing HDF5 files, each naming the file and, where there is one,
/// the object inside it.
public enum HDF5Error: Error, CustomStringConvertible, Equatable {
  /// The path does not exist or cannot be read.
  case fileNotFound(path: String)
  /// The file does not start with the HDF5 signature.
  case notHDF5(path: String)
  /// The file has the signature but ends before the end its superblock records.
  case truncated(path: String, detail: String)
  /// A libhdf5 call failed; `detail` is the library's innermost error description.
  case call(function: String, path: String, object: String, detail: String)
  /// No dataset maps to the tensor name asked for.
  case noSuchTensor(path: String, name: String)
  /// The dataset exists but holds data this reader does not turn into a tensor.
  case unsupportedDataset(path: String, name: String, reason: String)
  /// Two objects map to the same dotted tensor name.
  case nameCollision(path: String, name: String, first: String, second: String)
  /// A dataset's dimensions multiply past what memory can address.
  case shapeOverflow(path: String, name: String, shape: [UInt64])
  /// A tensor name the writer cannot turn into an HDF5 path.
  case invalidName(path: String, name: String, reason: String)
  /// A tensor name that needs an existing dataset to be a group, or an existing group to be a dataset.
  case nameConflict(path: String, name: String, existing: String)
  /// Bytes handed to the writer that do not match the shape and dtype.
  case byteCountMismatch(path: String, name: String, expected: Int, actual: Int)
  /// A BOOL tensor whose bytes are not all 0 or 1.
  case invalidBool(path: String, name: String, index: Int, value: UInt8)
  /// The writer was used after `finish()` or after a failure.
  case writerClosed(path: String)
  /// A POSIX call around the file (fsync, rename, fork) failed.
  case io(path: String, operation: String, errno: Int32)
  /// libhdf5 crashed reading the file's structure in a fresh worker of `HDF5ChildProbe`;
  /// `termination` says how the worker ended ("signal 11", "exit status 1").
  case libraryCrashed(path: String, termination: String)
  /// libhdf5 did not finish reading the file's structure in a fresh worker within `seconds`.
  case libraryTimedOut(path: String, seconds: Double)

  public var description: String {
    switch self {
    case .fileNotFound(let path):
      "\(path): no such file"
    case .notHDF5(let path):
      "\(path): not an HDF5 file"
    case .truncated(let path, let detail):
      "\(path): HDF5 file is truncated (\(detail))"
    case .call(let function, let path, let object, let detail):
      "\(path): '\(function)' failed on '\(object)'\(detail.isEmpty ? "" : ": \(detail)")"
    case .noSuchTensor(let path, let name):
      "\(path): no tensor named '\(name)'"
    case .unsupportedDataset(let path, let name, let reason):
      "\(path): dataset '\(name)' is not supported: \(reason)"
    case .nameCollision(let path, let name, let first, let second):
      "\(path): objects '\(first)' and '\(second)' both map to tensor name '\(name)'"
    case .shapeOverflow(let path, let name, let shape):
      "\(path): dataset '\(name)' has shape \(shape), too large to address"
    case .invalidName(let path, let name, let reason):
      "\(path): cannot store tensor '\(name)': \(reason)"
    case .nameConflict(let path, let name, let existing):
      "\(path): tensor '\(name)' conflicts with '\(existing)': a name cannot be both a group and a dataset"
    case .byteCountMismatch(let path, let name, let expected, let actual):
      "\(path): tensor '\(name)' needs \(expected) bytes but got \(actual)"
    case .invalidBool(let path, let name, let index, let value):
      "\(path): BOOL tensor '\(name)' has value \(value) at element \(index)"
    case .writerClosed(let path):
      "\(path): writer is already finished"
    case .io(let path, let operation, let errno):
      "\(path): \(operation) failed: \(String(cString: strerror(errno)))"
    case .libraryCrashed(let path, let termination):
      "\(path): libhdf5 crashed (\(termination)) while reading the file's structure; the file is malformed"
    case .libraryTimedOut(let path, let seconds):
      "\(path): libhdf5 did not finish reading the file's structure within "
        + "\(seconds == seconds.rounded() ? String(Int(seconds)) : String(seconds)) s; the file is likely malformed"
    }
  }
}
