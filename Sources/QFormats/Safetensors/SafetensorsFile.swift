#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif
import Foundation

/// A safetensors file, memory-mapped and validated on open; tensor data is read lazily.
///
/// Opening parses only the header: no data page is touched until `withRawBytes` is called,
/// and that hands out the mapped bytes without copying. A path of `-` reads standard input
/// into memory instead (a pipe cannot be mapped).
public final class SafetensorsFile: TensorSource, @unchecked Sendable {
  // Unchecked: the storage is immutable after init and only read; the pointer is owned here.
  public let location: String
  public let tensors: [TensorInfo]
  public let metadata: [String: String]
  /// Every tensor with its data offsets, in data order.
  public let entries: [SafetensorsEntry]
  /// Where the data section starts: 8 plus the header length.
  public let dataStart: Int
  /// The size of the whole file in bytes.
  public let fileSize: Int

  private enum Storage {
    case mapped(UnsafeMutableRawPointer, Int)
    case allocated(UnsafeMutableRawBufferPointer)
    case empty
  }

  private let storage: Storage
  private let indexByName: [String: Int]

  /// Opens and validates the file at `path` (`-` for standard input).
  ///
  /// - Throws: `SafetensorsError` naming the defect.
  public convenience init(path: String) throws {
    if path == "-" {
      try self.init(descriptor: STDIN_FILENO, location: "-")
      return
    }
    let fd = try Self.openOnce(path)
    defer { close(fd) }
    try self.init(descriptor: fd, location: path)
  }

  /// Opens `path` for reading without waiting for a writer when it is a named pipe, then
  /// makes reads block again; a pipe with no writer reads as empty instead of hanging.
  static func openOnce(_ path: String) throws(SafetensorsError) -> Int32 {
    let fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)
    if fd < 0 { throw .system(location: path, operation: "open", errno: errno) }
    let flags = fcntl(fd, F_GETFL)
    if flags >= 0 { _ = fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) }
    return fd
  }

  /// Maps the file open at `descriptor` (e.g. an unlinked scratch file); the descriptor stays
  /// the caller's and may be closed once this returns.
  ///
  /// - Parameter location: how messages name the file.
  public convenience init(descriptor fd: Int32, location path: String) throws {
    var status = stat()
    if fstat(fd, &status) != 0 { throw SafetensorsError.system(location: path, operation: "fstat", errno: errno) }
    if (status.st_mode & S_IFMT) == S_IFDIR {
      throw SafetensorsError.system(location: path, operation: "open", errno: EISDIR)
    }
    if (status.st_mode & S_IFMT) != S_IFREG {
      // A named pipe or device (e.g. /dev/stdin, <(…)) cannot be mapped: spool the stream,
      // bounded by its header, to a scratch file and map that.
      let scratch = try SafetensorsStream.spool(fd, location: path)
      defer { close(scratch) }
      try self.init(descriptor: scratch, location: path)
      return
    }
    let size = Int(status.st_size)
    if size == 0 { throw SafetensorsError.emptyFile(location: path) }
    guard let base = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0), base != MAP_FAILED else {
      throw SafetensorsError.system(location: path, operation: "mmap", errno: errno)
    }
    try self.init(storage: .mapped(base, size), location: path)
  }

  /// Parses a file already in memory, e.g. read from standard input; the bytes are copied.
  public convenience init(bytes: [UInt8], location: String = "-") throws {
    try self.init(storage: Self.copy(bytes), location: location)
  }

  private static func copy<C: Collection<UInt8>>(_ bytes: C) -> Storage {
    if bytes.isEmpty { return .empty }
    let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: bytes.count, alignment: 16)
    _ = buffer.initializeMemory(as: UInt8.self, from: bytes)
    return .allocated(buffer)
  }

  private init(storage: Storage, location: String) throws {
    self.storage = storage
    self.location = location
    let bytes: UnsafeRawBufferPointer =
      switch storage {
      case .mapped(let base, let size): UnsafeRawBufferPointer(start: base, count: size)
      case .allocated(let buffer): UnsafeRawBufferPointer(buffer)
      case .empty: UnsafeRawBufferPointer(start: nil, count: 0)
      }
    // On a throw the stored properties are not all set and deinit does not run: release here.
    let header: SafetensorsHeader
    do {
      header = try SafetensorsHeader.read(bytes, location: location)
    } catch {
      Self.release(storage)
      throw error
    }
    fileSize = bytes.count
    entries = header.entries
    tensors = header.entries.map(\.info)
    metadata = header.metadata
    dataStart = header.dataStart
    var index: [String: Int] = [:]
    index.reserveCapacity(entries.count)
    for (i, entry) in entries.enumerated() { index[entry.info.name] = i }
    indexByName = index
  }

  deinit { Self.release(storage) }

  private static func release(_ storage: Storage) {
    switch storage {
    case .mapped(let base, let size): munmap(base, size)
    case .allocated(let buffer): buffer.deallocate()
    case .empty: break
    }
  }

  /// The entry of `name`, or `nil`.
  public func entry(named name: String) -> SafetensorsEntry? {
    indexByName[name].map { entries[$0] }
  }

  public func withRawBytes<R>(of name: String, _ body: (UnsafeRawBufferPointer) throws -> R) throws -> R {
    guard let entry = entry(named: name) else {
      throw SafetensorsError.tensorNotFound(location: location, tensor: name)
    }
    let base: UnsafeRawPointer? =
      switch storage {
      case .mapped(let base, _): UnsafeRawPointer(base)
      case .allocated(let buffer): UnsafeRawPointer(buffer.baseAddress)
      case .empty: nil
      }
    guard let base else { return try body(UnsafeRawBufferPointer(start: nil, count: 0)) }
    return try body(UnsafeRawBufferPointer(start: base + dataStart + entry.dataRange.lowerBound, count: entry.dataRange.count))
  }

  /// Drops the mapped pages wholly inside `byteRange` of tensor `name`'s data (all of it when
  /// `nil`) from this process's memory; they stay in the page cache and are faulted back on the
  /// next read. A streaming converter calls this after reading a tensor, so its resident memory
  /// follows the tensor in hand rather than growing to the whole file.
  ///
  /// The corresponding C function is `madvise` (`MADV_DONTNEED`).
  public func releasePages(of name: String, byteRange: Range<Int>? = nil) {
    guard case .mapped(let base, _) = storage, let entry = entry(named: name) else { return }
    let page = Int(sysconf(Int32(_SC_PAGESIZE)))
    guard page > 0 else { return }
    let range = byteRange ?? 0..<entry.dataRange.count
    let start = dataStart + entry.dataRange.lowerBound + range.lowerBound
    let end = dataStart + entry.dataRange.lowerBound + min(range.upperBound, entry.dataRange.count)
    let alignedStart = (start + page - 1) / page * page
    let alignedEnd = end / page * page
    guard alignedEnd > alignedStart else { return }
    _ = madvise(base + alignedStart, alignedEnd - alignedStart, Int32(MADV_DONTNEED))
  }

  /// Everything `descriptor` yields until end of file, refused past `limit` bytes (a small
  /// JSON file such as a shard index, which may be a pipe or a device).
  static func readAll(_ descriptor: Int32, location: String, limit: Int = 100_000_000) throws -> [UInt8] {
    let bytes = try SafetensorsStream.readUpTo(limit + 1, from: descriptor, location: location)
    if bytes.count > limit {
      throw SafetensorsError.invalidIndex(location: location, reason: "is larger than \(limit) bytes, too large for an index")
    }
    return bytes
  }
}
