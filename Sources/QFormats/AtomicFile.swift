#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

/// A file written under a temporary name beside its destination and renamed over it only
/// once complete and on disk, so a crash or error never leaves a half-written destination
/// (nor damages one that already exists).
///
/// The temporary file is `.NAME.tmp-PID-RANDOM` in the destination's directory (a rename
/// is only atomic within one file system). `commit()` fsyncs the file, renames it and fsyncs
/// the directory; without `commit()`, deinit removes the temporary file, and so does SIGINT,
/// SIGTERM or SIGHUP (`TemporaryCleanup`).
///
/// A file a user named goes through `init(output:)`: its path was checked by
/// `OutputDestination`, whose rename re-checks what it replaces. Files inside a staged folder
/// use `init(destination:)`, a plain rename.
public final class AtomicFile {
  public let destination: String
  public let temporaryPath: String
  private let output: OutputDestination?
  private var descriptor: Int32
  private var committed = false

  /// Creates the temporary file for a checked output path.
  ///
  /// - Throws: `SafetensorsError.system` naming the temporary path.
  public convenience init(output: OutputDestination) throws(SafetensorsError) {
    output.removeStaleTemporaries()
    try self.init(destination: output.resolvedPath, output: output)
  }

  /// Creates the temporary file.
  ///
  /// - Throws: `SafetensorsError.system` naming the temporary path.
  public convenience init(destination: String) throws(SafetensorsError) {
    try self.init(destination: destination, output: nil)
  }

  private init(destination: String, output: OutputDestination?) throws(SafetensorsError) {
    self.destination = destination
    self.output = output
    let slash = destination.lastIndex(of: "/")
    let directory = slash.map { String(destination[...$0]) } ?? ""
    let name = slash.map { String(destination[destination.index(after: $0)...]) } ?? destination
    let random = String(UInt32.random(in: 0...UInt32.max), radix: 16)
    temporaryPath = "\(directory).\(name).tmp-\(getpid())-\(random)"
    var created: Int32 = -1
    try TemporaryCleanup.register(temporaryPath) { [temporaryPath] () throws(SafetensorsError) in
      created = open(temporaryPath, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o666)
      if created < 0 { throw .system(location: temporaryPath, operation: "create", errno: errno) }
    }
    descriptor = created
  }

  deinit {
    if !committed { abandon() }
  }

  /// Appends all of `bytes`, retrying partial writes.
  public func write(_ bytes: UnsafeRawBufferPointer) throws(SafetensorsError) {
    try _writeAll(descriptor, bytes, location: temporaryPath)
  }

  /// Makes the file durable and renames it over the destination.
  public func commit() throws(SafetensorsError) {
    guard !committed else { return }
    if fsync(descriptor) != 0 { throw failure("fsync") }
    if close(descriptor) != 0 {
      descriptor = -1
      throw failure("close")
    }
    descriptor = -1
    if let output {
      do { try output.install(from: temporaryPath) } catch {
        abandon()
        throw .output(error)
      }
    } else {
      do { try OutputDestination.refuseSpecialFile(at: destination) } catch {
        abandon()
        throw .output(error)
      }
      if rename(temporaryPath, destination) != 0 { throw failure("rename to '\(destination)'") }
    }
    committed = true
    TemporaryCleanup.unregister(temporaryPath)
    let slash = destination.lastIndex(of: "/")
    let directory = slash.map { $0 == destination.startIndex ? "/" : String(destination[..<$0]) } ?? "."
    let directoryDescriptor = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
    if directoryDescriptor >= 0 {
      _ = fsync(directoryDescriptor)
      close(directoryDescriptor)
    }
  }

  /// Closes and removes the temporary file; the destination is untouched.
  public func abandon() {
    if descriptor >= 0 {
      close(descriptor)
      descriptor = -1
    }
    if !committed {
      unlink(temporaryPath)
      TemporaryCleanup.unregister(temporaryPath)
    }
  }

  private func failure(_ operation: String) -> SafetensorsError {
    let code = errno
    abandon()
    return .system(location: temporaryPath, operation: operation, errno: code)
  }
}

/// Writes all of `bytes` to `descriptor`, retrying after partial writes and interrupts.
func _writeAll(_ descriptor: Int32, _ bytes: UnsafeRawBufferPointer, location: String) throws(SafetensorsError) {
  guard var next = bytes.baseAddress else { return }
  var remaining = bytes.count
  while remaining > 0 {
    let written = write(descriptor, next, remaining)
    if written < 0 {
      if errno == EINTR { continue }
      throw .system(location: location, operation: "write", errno: errno)
    }
    next += written
    remaining -= written
  }
}
