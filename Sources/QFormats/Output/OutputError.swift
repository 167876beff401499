#if canImport(Glibc)
  import Glibc
#endif

/// Why an output path was refused or could not be put in place.
///
/// Every case names the output path as given; `description` is one line.
public enum OutputError: Error, CustomStringConvertible, Equatable, Sendable {
  /// The path exists and replacing it was not asked for (or it appeared while the run worked).
  case exists(path: String)
  /// The path is one of the inputs, holds one, or lies inside one.
  case overlapsInput(path: String, input: String, relation: String)
  /// The path names a device, FIFO or socket, which is never replaced.
  case specialFile(path: String, kind: String)
  /// The existing entry is a file where a folder is written, or the other way round.
  case kindMismatch(path: String, existing: String, written: String)
  /// The existing folder is not one that `--force` may replace.
  case notReplaceable(path: String, reason: String)
  /// A file system call failed.
  case system(path: String, operation: String, errno: Int32)

  public var description: String {
    switch self {
    case .exists(let path):
      "\(path): output exists (use '--force' to replace it)"
    case .overlapsInput(let path, let input, let relation):
      "\(path): output \(relation) the input '\(input)'; choose another output path"
    case .specialFile(let path, let kind):
      "\(path): output is a \(kind), which is never replaced; choose a regular path"
    case .kindMismatch(let path, let existing, let written):
      "\(path): output exists as a \(existing), and this run writes a \(written); remove it or choose another path"
    case .notReplaceable(let path, let reason):
      "\(path): '--force' does not replace this folder: \(reason)"
    case .system(let path, let operation, let code):
      "\(path): cannot \(operation): \(String(cString: strerror(code)))"
    }
  }
}
