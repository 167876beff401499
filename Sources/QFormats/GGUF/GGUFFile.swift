#if canImport(Glibc)
  import Glibc
#endif

/// A GGUF file (versions 2 and 3), mapped read-only; tensor data is read only when asked for.
///
/// The header is parsed and validated up front, with every count and length bounded by the file
/// size before anything is allocated, so hostile files fail with a `GGUFError` rather than a crash.
/// Immutable after `init`, so it is safe to share across threads.
public final class GGUFFile: TensorSource, @unchecked Sendable {
  public static let magic: [UInt8] = Array("GGUF".utf8)
  public static let defaultAlignment = 32
  public static let alignmentKey = "general.alignment"
  public static let quantizationVersionKey = "general.quantization_version"

  public let location: String
  /// 2 or 3 (the layouts are the same).
  public let version: UInt32
  /// Metadata in file order.
  public let keyValues: [(key: String, value: GGUFValue)]
  /// Metadata by key.
  public let values: [String: GGUFValue]
  /// Metadata rendered as strings; arrays longer than 16 elements are summarised as `[N x type]`.
  public let metadata: [String: String]
  /// Every tensor in file order, whatever its type.
  public let allTensors: [GGUFTensorInfo]
  /// The tensors whose ggml type has a `DType`, in file order.
  public let tensors: [TensorInfo]
  /// The block-quantized tensors (no `DType`), in file order; `withRawBytes(of:)` returns their blocks.
  public let quantizedTensors: [GGUFTensorInfo]
  /// `general.alignment`, or 32.
  public let alignment: Int
  /// The file offset where the data section starts.
  public let dataStart: Int
  public let fileSize: Int

  private let base: UnsafeRawPointer?
  private let indexByName: [String: Int]

  /// Maps and parses the file at `path`.
  /// - Throws: `GGUFError` when the file cannot be opened or its header is malformed.
  public init(path: String) throws {
    location = path
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { throw GGUFError.system(path: path, call: "open", errno: errno) }
    defer { close(fd) }
    var info = stat()
    guard fstat(fd, &info) == 0 else {
      throw GGUFError.system(path: path, call: "fstat", errno: errno)
    }
    guard (info.st_mode & S_IFMT) == S_IFREG else {
      throw GGUFError.badHeader(path: path, defect: "is not a regular file")
    }
    let size = Int(info.st_size)
    var mapped: UnsafeRawPointer? = nil
    if size > 0 {
      let pointer = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0)
      guard let pointer, pointer != MAP_FAILED else {
        throw GGUFError.system(path: path, call: "mmap", errno: errno)
      }
      mapped = UnsafeRawPointer(pointer)
    }
    let bytes = UnsafeRawBufferPointer(start: mapped, count: size)
    do {
      let header = try GGUFHeader(bytes: bytes, path: path)
      version = header.version
      keyValues = header.keyValues
      alignment = header.alignment
      dataStart = header.dataStart
      allTensors = header.tensors
    } catch {
      if let mapped { munmap(UnsafeMutableRawPointer(mutating: mapped), size) }
      throw error
    }
    base = mapped
    fileSize = size
    values = Dictionary(
      keyValues.map { ($0.key, $0.value) }, uniquingKeysWith: { first, _ in first })
    metadata = values.mapValues(\.rendered)
    tensors = allTensors.compactMap { tensor in
      tensor.type.dtype.map { TensorInfo(name: tensor.name, dtype: $0, shape: tensor.shape) }
    }
    quantizedTensors = allTensors.filter { $0.type.dtype == nil }
    indexByName = Dictionary(
      allTensors.enumerated().map { ($1.name, $0) }, uniquingKeysWith: { first, _ in first })
  }

  deinit {
    if let base { munmap(UnsafeMutableRawPointer(mutating: base), fileSize) }
  }

  /// The tensor's description whatever its type, or `nil`.
  public func tensorInfo(named name: String) -> GGUFTensorInfo? {
    indexByName[name].map { allTensors[$0] }
  }

  /// Calls `body` with the tensor's raw bytes as stored (little-endian elements, or whole blocks
  /// for quantized types); the buffer is valid only inside `body`.
  public func withRawBytes<R>(of name: String, _ body: (UnsafeRawBufferPointer) throws -> R) throws
    -> R
  {
    guard let index = indexByName[name] else {
      throw GGUFError.noSuchTensor(path: location, tensor: name)
    }
    let tensor = allTensors[index]
    // Ranges were checked against the file size when the header was parsed.
    let start = base.map { $0 + dataStart + tensor.offset }
    return try body(
      UnsafeRawBufferPointer(start: tensor.byteCount == 0 ? nil : start, count: tensor.byteCount))
  }
}
