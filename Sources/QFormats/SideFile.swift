import Foundation

#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

/// The small files that travel with a checkpoint or a command (config.json, tokenizer.json,
/// texts, adapter configs), read whole but bounded: opened once, without waiting on a named
/// pipe that has no writer, and refused past a size limit, so /dev/zero or a FIFO in their
/// place fails at once instead of filling memory or hanging.
public enum SideFile {
  /// Why a side file cannot be read; `description` is a phrase completing "FILE: …".
  public enum Problem: Error, Equatable, Sendable, CustomStringConvertible {
    case notFound
    case isFolder
    case tooLarge(limit: Int)
    case system(operation: String, errno: Int32)

    public var description: String {
      switch self {
      case .notFound: "no such file"
      case .isFolder: "is a folder, not a file"
      case .tooLarge(let limit): "is larger than the \(limit)-byte limit for such a file"
      case .system(let operation, let code): "cannot \(operation): \(_systemMessage(code))"
      }
    }
  }

  /// A `Problem` with the path it concerns, for callers without an error type of their own.
  public struct Failure: Error, Equatable, Sendable, CustomStringConvertible {
    public var path: String
    public var problem: Problem

    public init(path: String, problem: Problem) {
      self.path = path
      self.problem = problem
    }

    public var description: String { "\(path): \(problem)" }
  }

  /// A stream (a pipe, a device) is read to at most this many bytes, whatever the limit.
  public static let streamLimit = 64 << 20

  /// The contents of `path`, at most `limit` bytes (`streamLimit` for a pipe or device).
  ///
  /// - Throws: `Problem`: the file is missing, a folder, too large, or cannot be read (a
  ///   symbolic link loop is ELOOP, not missing).
  public static func read(_ path: String, limit: Int) throws(Problem) -> Data {
    let descriptor = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)
    if descriptor < 0 {
      throw errno == ENOENT ? .notFound : .system(operation: "open", errno: errno)
    }
    defer { close(descriptor) }
    let flags = fcntl(descriptor, F_GETFL)
    if flags >= 0 { _ = fcntl(descriptor, F_SETFL, flags & ~O_NONBLOCK) }
    var status = stat()
    if fstat(descriptor, &status) != 0 { throw .system(operation: "fstat", errno: errno) }
    let type = status.st_mode & S_IFMT
    if type == S_IFDIR { throw .isFolder }
    let cap = type == S_IFREG ? limit : min(limit, streamLimit)
    if type == S_IFREG, Int(status.st_size) > cap { throw .tooLarge(limit: cap) }
    var bytes = Data()
    var chunk = [UInt8](repeating: 0, count: 1 << 16)
    while bytes.count <= cap {
      let got = chunk.withUnsafeMutableBytes { Glibc.read(descriptor, $0.baseAddress, $0.count) }
      if got < 0 {
        if errno == EINTR { continue }
        throw .system(operation: "read", errno: errno)
      }
      if got == 0 { return bytes }
      bytes.append(contentsOf: chunk[0..<got])
    }
    throw .tooLarge(limit: cap)
  }

  /// Whether `path` exists; a path that cannot be looked up for another reason (a symbolic
  /// link loop, no permission) throws instead of reading as absent.
  public static func exists(_ path: String) throws(Problem) -> Bool {
    var status = stat()
    if stat(path, &status) == 0 { return true }
    if errno == ENOENT || errno == ENOTDIR { return false }
    throw .system(operation: "stat", errno: errno)
  }
}
