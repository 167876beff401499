import CHDF5
import Foundation

/// An HDF5 file read as a checkpoint: every numeric dataset, in any group, is a tensor.
///
/// Groups are walked depth first, in creation order where the group indexes it and in
/// name order otherwise. The dataset `/a/b/c` becomes the tensor `a.b.c`; link names are kept
/// as they are, so Keras 2 weights read as `model_weights.dense.dense.kernel:0` and Keras 3
/// weights as `layers.dense.vars.0`. Attributes of the root group become metadata under
/// their own name, attributes of other objects under `a.b.c.attribute`; numeric values are
/// written in decimal, arrays as `[x, y]`.
///
/// Datasets that hold no numbers (strings, compound records, variable-length data) are not
/// tensors; they are listed in `skipped` with the reason, so a tool can say what it left out.
/// Data is read only when `withRawBytes` asks for it, converted to little-endian by libhdf5.
public final class HDF5File: TensorSource {
  public let location: String
  public let tensors: [TensorInfo]
  public let metadata: [String: String]
  /// Datasets and links that are not tensors, with the reason, in walk order.
  public let skipped: [(name: String, reason: String)]

  private let file: HDF5Object
  private let plans: [String: ReadPlan]

  /// Opens the file and lists its tensors; no tensor data is read yet.
  ///
  /// A worker process reads the file's structure first (`HDF5ChildProbe`), so that a malformed
  /// file that crashes libhdf5 crashes the worker, not this process.
  /// The corresponding C functions are `H5Fis_hdf5` and `H5Fopen`.
  /// - Parameter path: The file to open; it stays open, read-only, until the value is released.
  /// - Throws: `HDF5Error` naming the file when it is missing, not HDF5, truncated or unreadable,
  ///   or when libhdf5 crashed or hung on it in the worker.
  public convenience init(path: String) throws {
    try self.init(path: path, probeTimeout: HDF5ChildProbe.timeout)
  }

  /// Opens the file, giving the worker that reads its structure first `probeTimeout` to answer.
  ///
  /// A caller with its own time limit per file, such as a fuzzer, passes one below that limit, so
  /// that a file on which libhdf5 loops is reported as an error in time. A file a reused worker
  /// hung on is tried once more in a fresh one, so a hang is reported after twice `probeTimeout`.
  public init(path: String, probeTimeout: Duration) throws {
    location = path
    try HDF5ChildProbe.shared.check(path: path, timeout: probeTimeout)
    let (file, catalog) = try Self.readStructure(path: path)
    self.file = file
    tensors = catalog.tensors
    metadata = catalog.metadata
    skipped = catalog.skipped
    plans = catalog.plans
  }

  /// Opens the file and walks everything the reader touches before reading tensor data:
  /// groups, links, datasets' types and shapes, attributes and global heaps.
  ///
  /// Both the worker of `HDF5ChildProbe` and the parent call this, so the worker meets every
  /// libhdf5 code path the parent is about to take.
  static func readStructure(path: String) throws(HDF5Error) -> (HDF5Object, HDF5Catalog) {
    try HDF5Library.locked { () throws(HDF5Error) -> (HDF5Object, HDF5Catalog) in
      guard access(path, R_OK) == 0 else { throw HDF5Error.fileNotFound(path: path) }
      let context = HDF5Context(path: path, object: "/", heaps: HDF5GlobalHeaps(path: path))
      let isHDF5 = H5Fis_hdf5(path)
      if isHDF5 == 0 { throw HDF5Error.notHDF5(path: path) }
      try context.check("H5Fis_hdf5", isHDF5)
      let access = try HDF5Library.unlockedFileAccess(context: context)
      let id = H5Fopen(path, chdf5_acc_rdonly(), access.id)
      if id < 0 {
        let detail = HDF5Library.innermostError()
        if detail.contains("truncated") { throw HDF5Error.truncated(path: path, detail: detail) }
        throw HDF5Error.call(function: "H5Fopen", path: path, object: "/", detail: detail)
      }
      let file = HDF5Object(id)
      let root = try context.open("H5Gopen2", H5Gopen2(file.id, "/", chdf5_p_default()))
      var catalog = HDF5Catalog(path: path)
      try catalog.walk(group: root, objectPath: "/", dottedName: "", context: context)
      return (file, catalog)
    }
  }

  /// Reads the whole dataset into a temporary buffer and passes its little-endian bytes to `body`.
  ///
  /// The corresponding C function is `H5Dread`; chunked and compressed datasets are
  /// decompressed by libhdf5. `body` runs outside the library lock.
  public func withRawBytes<R>(
    of name: String, _ body: (UnsafeRawBufferPointer) throws -> R
  ) throws -> R {
    guard let plan = plans[name] else {
      if let entry = skipped.first(where: { $0.name == name }) {
        throw HDF5Error.unsupportedDataset(path: location, name: name, reason: entry.reason)
      }
      throw HDF5Error.noSuchTensor(path: location, name: name)
    }
    let byteCount = plan.info.byteCount
    try checkPlausibleSize(byteCount, of: name)
    let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: max(byteCount, 1), alignment: 64)
    defer { buffer.deallocate() }
    if byteCount > 0 {
      try HDF5Library.locked { () throws(HDF5Error) in
        try read(plan, into: buffer)
      }
    }
    return try body(UnsafeRawBufferPointer(rebasing: buffer[0..<byteCount]))
  }

  /// Deflate, the densest filter in use, expands at most 1032-fold.
  static let maximumExpansion = 1032

  /// Refuses a dataset that claims more bytes than the whole file could hold compressed,
  /// before anything is allocated: a chunked dataset whose chunks were never written reads
  /// as fill values, so a 2 KB file can otherwise ask for terabytes.
  private func checkPlausibleSize(_ byteCount: Int, of name: String) throws(HDF5Error) {
    var status = stat()
    guard stat(location, &status) == 0 else { throw HDF5Error.io(path: location, operation: "stat", errno: errno) }
    let (limit, overflow) = Int(status.st_size).multipliedReportingOverflow(by: Self.maximumExpansion)
    if !overflow, byteCount > limit {
      throw HDF5Error.unsupportedDataset(
        path: location, name: name,
        reason: "claims \(byteCount) bytes, more than a \(status.st_size)-byte file holds even compressed")
    }
  }

  /// The corresponding C function is `H5Dread`.
  private func read(_ plan: ReadPlan, into buffer: UnsafeMutableRawBufferPointer) throws(HDF5Error)
  {
    let context = HDF5Context(path: location, object: plan.objectPath)
    let dataset = try context.open(
      "H5Dopen2", H5Dopen2(file.id, plan.objectPath, chdf5_p_default()))
    let memoryType: HDF5Object
    switch plan.memory {
    case .native(let make):
      memoryType = HDF5Object(make(), owned: false)
    case .fileTypeInLittleEndian:
      let fileType = try context.open("H5Dget_type", H5Dget_type(dataset.id))
      memoryType = try context.open("H5Tcopy", H5Tcopy(fileType.id))
      if H5Tget_size(memoryType.id) > 1 {
        try context.check("H5Tset_order", H5Tset_order(memoryType.id, H5T_ORDER_LE))
      }
    }
    try context.check(
      "H5Dread",
      H5Dread(
        dataset.id, memoryType.id, chdf5_s_all(), chdf5_s_all(), chdf5_p_default(),
        buffer.baseAddress))
  }
}

/// How to read one dataset.
struct ReadPlan {
  enum Memory {
    /// Read through a native type (libhdf5 converts byte order and, for integers, nothing else).
    case native(@Sendable () -> hid_t)
    /// Read through the file's own type with little-endian order: halves, bool enums, 8-bit floats.
    case fileTypeInLittleEndian
  }

  var objectPath: String
  var info: TensorInfo
  var memory: Memory
}

extension ReadPlan: Sendable {}
