import CHDF5
import Foundation

/// Writes tensors into a new HDF5 file that h5py reads back with the same dtypes.
///
/// The tensor `a.b.c` becomes the dataset `/a/b/c`, creating the groups on the way.
/// F16 is IEEE half, BOOL is h5py's `FALSE`/`TRUE` enum, and BF16 and the F8 types, which
/// HDF5 has no standard type for, are stored as U16/U8 with a string attribute `dtype` naming
/// the real type, so `HDF5File` reads them back as they were. Metadata becomes string
/// attributes of the root group.
///
/// The file appears at `path` only when `finish()` succeeds: until then the data goes to a
/// temporary `.NAME.tmp-PID` in the same directory, which is renamed into place after an
/// fsync, and removed on any failure or when the writer is dropped unfinished.
public final class HDF5Writer {
  public let path: String
  private let temporaryPath: String
  private var file: HDF5Object?
  /// Each group created so far, with the tensor that needed it first.
  private var groups: [String: String] = [:]
  private var datasets: Set<String> = []

  /// Creates the temporary file and writes `metadata` as root attributes.
  ///
  /// The corresponding C function is `H5Fcreate`.
  public init(path: String, metadata: [String: String]) throws {
    self.path = path
    let url = URL(fileURLWithPath: path)
    temporaryPath =
      url.deletingLastPathComponent()
      .appendingPathComponent(".\(url.lastPathComponent).tmp-\(getpid())").path
    let temporaryPath = temporaryPath
    let context = HDF5Context(path: path, object: "/")
    file = try HDF5Library.locked { () throws(HDF5Error) -> HDF5Object in
      let access = try HDF5Library.unlockedFileAccess(context: context)
      let file = try context.open(
        "H5Fcreate",
        H5Fcreate(temporaryPath, chdf5_acc_trunc(), chdf5_p_default(), access.id))
      for key in metadata.keys.sorted() {
        try Self.writeStringAttribute(
          key, value: metadata[key] ?? "", on: file.id, context: context)
      }
      return file
    }
  }

  deinit {
    abandon()
  }

  /// Writes one tensor from its little-endian bytes.
  ///
  /// The corresponding C functions are `H5Gcreate2`, `H5Dcreate2` and `H5Dwrite`.
  /// - Throws: `HDF5Error` when the name cannot be a path, clashes with an earlier tensor,
  ///   or the byte count does not match; or when libhdf5 fails, after which the writer is closed.
  public func write(name: String, dtype: DType, shape: [Int], bytes: UnsafeRawBufferPointer) throws
  {
    guard let file else { throw HDF5Error.writerClosed(path: path) }
    let components = try validatedComponents(of: name)
    let expected = try byteCount(of: name, dtype: dtype, shape: shape)
    guard bytes.count == expected else {
      throw HDF5Error.byteCountMismatch(
        path: path, name: name, expected: expected, actual: bytes.count)
    }
    if dtype == .bool, let index = bytes.firstIndex(where: { $0 > 1 }) {
      throw HDF5Error.invalidBool(path: path, name: name, index: index, value: bytes[index])
    }
    let newGroups = (1..<components.count).map { components[0..<$0].joined(separator: ".") }
      .filter { groups[$0] == nil }
    do {
      try HDF5Library.locked { () throws(HDF5Error) in
        for group in newGroups {
          let context = HDF5Context(
            path: path, object: "/" + group.replacingOccurrences(of: ".", with: "/"))
          _ = try context.open(
            "H5Gcreate2",
            H5Gcreate2(
              file.id, context.object, chdf5_p_default(), chdf5_p_default(), chdf5_p_default()))
        }
        let context = HDF5Context(path: path, object: "/" + components.joined(separator: "/"))
        try Self.writeDataset(in: file, dtype: dtype, shape: shape, bytes: bytes, context: context)
      }
    } catch {
      abandon()
      throw error
    }
    for group in newGroups { groups[group] = name }
    datasets.insert(name)
  }

  /// Closes the file, flushes it to disk and renames it into place.
  ///
  /// The corresponding C function is `H5Fclose`.
  public func finish() throws {
    guard let file else { throw HDF5Error.writerClosed(path: path) }
    do {
      try HDF5Library.locked { () throws(HDF5Error) in
        _ = try HDF5Context(path: path, object: "/").check("H5Fclose", H5Fclose(file.id))
      }
      self.file = nil
      try syncFile(temporaryPath)
      guard rename(temporaryPath, path) == 0 else {
        throw HDF5Error.io(path: path, operation: "rename", errno: errno)
      }
      // Make the rename itself durable; failure here leaves a complete file, so it is not an error.
      let directory = open(URL(fileURLWithPath: path).deletingLastPathComponent().path, O_RDONLY)
      if directory >= 0 {
        _ = fsync(directory)
        close(directory)
      }
    } catch {
      abandon()
      throw error
    }
  }

  /// Closes the file if open and removes the temporary file; the writer is unusable afterwards.
  private func abandon() {
    if let file {
      HDF5Library.locked { () -> Void in _ = H5Fclose(file.id) }
      self.file = nil
    }
    unlink(temporaryPath)
  }

  private func syncFile(_ filePath: String) throws(HDF5Error) {
    let descriptor = open(filePath, O_RDONLY)
    guard descriptor >= 0 else { throw HDF5Error.io(path: path, operation: "open", errno: errno) }
    defer { close(descriptor) }
    guard fsync(descriptor) == 0 else {
      throw HDF5Error.io(path: path, operation: "fsync", errno: errno)
    }
  }

  /// The name's path components, checked against each other and against earlier tensors.
  private func validatedComponents(of name: String) throws(HDF5Error) -> [String] {
    let components = name.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
    if components.contains(where: \.isEmpty) {
      throw HDF5Error.invalidName(path: path, name: name, reason: "empty path component")
    }
    if name.contains("/") {
      throw HDF5Error.invalidName(
        path: path, name: name, reason: "'/' is not allowed in tensor names")
    }
    if datasets.contains(name) {
      throw HDF5Error.invalidName(
        path: path, name: name, reason: "a tensor of that name was already written")
    }
    if let existing = groups[name] {
      throw HDF5Error.nameConflict(path: path, name: name, existing: existing)
    }
    for end in 1..<components.count {
      let prefix = components[0..<end].joined(separator: ".")
      if datasets.contains(prefix) {
        throw HDF5Error.nameConflict(path: path, name: name, existing: prefix)
      }
    }
    return components
  }

  private func byteCount(of name: String, dtype: DType, shape: [Int]) throws(HDF5Error) -> Int {
    var total = dtype.byteSize
    for dim in shape {
      guard dim >= 0 else {
        throw HDF5Error.invalidName(
          path: path, name: name, reason: "negative dimension in shape \(shape)")
      }
      let (product, overflow) = total.multipliedReportingOverflow(by: dim)
      guard !overflow else {
        throw HDF5Error.shapeOverflow(path: path, name: name, shape: shape.map { UInt64($0) })
      }
      total = product
    }
    return total
  }
}

@available(*, unavailable)
extension HDF5Writer: Sendable {}
