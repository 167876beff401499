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
    let properties = try context.open("H5Dget_create_plist", H5Dget_create_plist(dataset.id))
    switch H5Pget_layout(properties.id) {
    case H5D_CHUNKED: try checkChunkShape(of: dataset, properties: properties, name: plan.info.name, context: context)
    case H5D_COMPACT: try checkCompactStorage(of: dataset, name: plan.info.name, context: context)
    default: break
    }
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

  /// Refuses a compact dataset that stores fewer bytes than its shape and type need.
  ///
  /// A compact dataset keeps its data inside its object header, and libhdf5 1.10's `H5Dread`
  /// copies as many bytes out of that buffer as the dataspace asks for without comparing the two
  /// (`Fixtures/malformed-found/libhdf5_compact_short.h5`: 0 bytes stored for a 2-byte dataset, a
  /// copy from a null pointer).
  /// The corresponding C function is `H5Dget_storage_size`.
  private func checkCompactStorage(of dataset: HDF5Object, name: String, context: HDF5Context) throws(HDF5Error) {
    let fileType = try context.open("H5Dget_type", H5Dget_type(dataset.id))
    let space = try context.open("H5Dget_space", H5Dget_space(dataset.id))
    let elements = try context.check("H5Sget_simple_extent_npoints", H5Sget_simple_extent_npoints(space.id))
    let (needed, overflow) = UInt64(elements).multipliedReportingOverflow(by: UInt64(H5Tget_size(fileType.id)))
    let stored = H5Dget_storage_size(dataset.id)
    if overflow || stored < needed {
      throw HDF5Error.unsupportedDataset(
        path: location, name: name,
        reason: "its compact storage holds \(stored) bytes but its shape and type need "
          + (overflow ? "more than 2^64" : "\(needed)"))
    }
  }

  /// Refuses a chunked dataset whose chunks are empty, larger than its fixed maximum shape along
  /// some dimension (as libhdf5 refuses to create one), or larger than its current shape along a
  /// dimension that holds data.
  ///
  /// libhdf5 1.10 reads such a dataset from a file without those checks, and `H5Dread` then copies
  /// a whole chunk's worth of bytes out of the smaller buffer it decompressed the stored chunk into
  /// (`Fixtures/malformed-found/libhdf5_chunk_past_dataset.h5`: chunks of 46096 x 8 in a 64 x 8
  /// dataset; `libhdf5_chunk_past_shape.h5`: chunks of 16 x 512 in a 64 x 8 dataset whose
  /// maximum shape was raised to 64 x 2^52). A real checkpoint's chunks lie within its tensors; an
  /// extendible dataset chunked beyond its present data is refused with the rest. The walk in
  /// `HDF5ChildProbe`'s worker reads no data, so this check is what stands between such a file
  /// and the overread.
  /// The corresponding C functions are `H5Pget_chunk` and `H5Sget_simple_extent_dims`.
  private func checkChunkShape(
    of dataset: HDF5Object, properties: HDF5Object, name: String, context: HDF5Context
  ) throws(HDF5Error) {
    let space = try context.open("H5Dget_space", H5Dget_space(dataset.id))
    let rank = Int(try context.check("H5Sget_simple_extent_ndims", H5Sget_simple_extent_ndims(space.id)))
    var current = [hsize_t](repeating: 0, count: max(rank, 1))
    var maximum = current
    var chunk = current
    try context.check("H5Sget_simple_extent_dims", H5Sget_simple_extent_dims(space.id, &current, &maximum))
    let chunkRank = Int(try context.check("H5Pget_chunk", H5Pget_chunk(properties.id, Int32(rank), &chunk)))
    // H5S_UNLIMITED, a macro Swift does not import.
    let unlimited = hsize_t.max
    let fits = chunkRank == rank && (0..<rank).allSatisfy { axis in
      chunk[axis] > 0 && (current[axis] == 0 || maximum[axis] == unlimited || chunk[axis] <= maximum[axis])
    }
    let shape = { (dims: [hsize_t], count: Int) in
      "[" + dims.prefix(count).map(String.init).joined(separator: ", ") + "]"
    }
    if !fits {
      let chunks = shape(chunk, min(chunkRank, rank))
      throw HDF5Error.unsupportedDataset(
        path: location, name: name,
        reason: "its chunks \(chunks) do not fit its maximum shape \(shape(maximum, rank))")
    }
    if (0..<rank).contains(where: { current[$0] > 0 && chunk[$0] > current[$0] }) {
      throw HDF5Error.unsupportedDataset(
        path: location, name: name,
        reason: "its chunks \(shape(chunk, rank)) are larger than its shape \(shape(current, rank))")
    }
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
