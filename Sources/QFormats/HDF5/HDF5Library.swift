import CHDF5
import Foundation

/// Process-wide access to libhdf5.
///
/// A serial libhdf5 build need not be thread-safe, so every call into it, including the closes
/// in `HDF5Object.deinit`, runs under one recursive lock. Recursive, because an object
/// released inside a locked region closes its handle from within that region.
enum HDF5Library {
  private static let lock: NSRecursiveLock = {
    let lock = NSRecursiveLock()
    lock.name = "libhdf5"
    return lock
  }()

  /// True only in the worker process forked by `HDF5ChildProbe`.
  ///
  /// The worker is forked with `lock` held and owns a copy of it whose owner is the parent's
  /// thread, so locking it again would wait forever. The worker has a single thread and needs no lock.
  nonisolated(unsafe) static var isProbeChild = false

  /// Runs `body` with exclusive access to libhdf5.
  static func locked<R, E: Error>(_ body: () throws(E) -> R) throws(E) -> R {
    if !isProbeChild { lock.lock() }
    defer { if !isProbeChild { lock.unlock() } }
    // Turn off libhdf5's printing of its error stack; `HDF5Error` carries what matters.
    // Thread-safe builds (Debian's among them) keep this setting per thread, so set it each time.
    _ = H5Eset_auto2(hid_t(H5E_DEFAULT), nil, nil)
    return try body()
  }

  /// File access properties that take no file lock, for every file we open or create.
  ///
  /// `HDF5ChildProbe` forks while other threads may hold HDF5 files open, and a forked worker
  /// keeps a copy of each descriptor until it has closed the ones it inherited, so a lock taken on
  /// one could outlive its close, and another open of that file would fail with "unable to lock file". Locks buy us
  /// nothing: we write to a temporary file and rename it, so no reader sees a file being written.
  ///
  /// The corresponding C functions are `H5Pcreate` and `H5Pset_file_locking`.
  static func unlockedFileAccess(context: HDF5Context) throws(HDF5Error) -> HDF5Object {
    let access = try context.open("H5Pcreate", H5Pcreate(chdf5_p_file_access()))
    try context.check("H5Pset_file_locking", H5Pset_file_locking(access.id, false, true))
    return access
  }

  /// The innermost message on libhdf5's error stack, which names the actual defect, on one line.
  static func innermostError() -> String {
    var buffer = [CChar](repeating: 0, count: 512)
    buffer.withUnsafeMutableBufferPointer { chdf5_innermost_error($0.baseAddress, $0.count) }
    let bytes = buffer.prefix { $0 != 0 }.map { $0 == 10 || $0 == 13 ? 32 : UInt8(bitPattern: $0) }
    return String(decoding: bytes, as: UTF8.self)
  }
}

/// Where a libhdf5 call happens, for the error it throws when it fails.
struct HDF5Context {
  /// The file path as given by the caller.
  var path: String
  /// The object inside the file (`/` for the file itself).
  var object: String
  /// The file's global heap check, shared by every context of one open file.
  var heaps: HDF5GlobalHeaps? = nil

  /// Throws `HDF5Error.call` when `status` is negative, as libhdf5 reports failure.
  @discardableResult
  func check<T: BinaryInteger>(_ function: String, _ status: T) throws(HDF5Error) -> T {
    if status < 0 {
      throw HDF5Error.call(
        function: function, path: path, object: object, detail: HDF5Library.innermostError())
    }
    return status
  }

  /// Checks an identifier-returning call and takes ownership of the identifier.
  func open(_ function: String, _ id: hid_t) throws(HDF5Error) -> HDF5Object {
    HDF5Object(try check(function, id))
  }

  /// The same place, one object further down.
  func appending(_ name: String) -> HDF5Context {
    HDF5Context(path: path, object: object == "/" ? "/" + name : object + "/" + name, heaps: heaps)
  }
}

/// Owns one libhdf5 identifier (file, group, dataset, datatype, dataspace, attribute or
/// property list) and closes it in `deinit`.
///
/// Marked `@unchecked Sendable` because an `HDF5File` keeps its file handle for lazy reads;
/// every use of `id` happens under `HDF5Library.locked`.
final class HDF5Object: @unchecked Sendable {
  let id: hid_t
  /// False for the library's predefined types, which must not be closed.
  private let owned: Bool

  init(_ id: hid_t, owned: Bool = true) {
    self.id = id
    self.owned = owned
  }

  deinit {
    guard owned else { return }
    HDF5Library.locked {
      // The corresponding C function is `H5Idec_ref`, which closes any kind of identifier.
      if H5Iis_valid(id) > 0 {
        _ = H5Idec_ref(id)
      }
    }
  }
}
