#if canImport(Glibc)
  import Glibc
#endif

/// One tensor the writer will store: its name, ggml type and row-major shape.
public struct GGUFTensorPlan: Sendable, Hashable {
  public var name: String
  public var type: GGMLType
  /// Row-major dimensions (HF order); written to the file reversed, in ggml order.
  public var shape: [Int]

  public init(name: String, type: GGMLType, shape: [Int]) {
    self.name = name
    self.type = type
    self.shape = shape
  }
}

/// Writes a GGUF version 3 file in one pass without holding tensor data in memory.
///
/// The plan (metadata in order, then every tensor's name, type and shape) is given up front so
/// the header with all offsets goes out first; tensor data is then appended in plan order. The file
/// is written to `.NAME.tmp-PID` beside the destination and renamed over it by `finish()`, so
/// readers never see a partial file; on any error, or if `finish()` is never called, the temporary
/// file is removed. Layout matches the `gguf` Python package: metadata in order, tensor infos in
/// order, each tensor padded with zeros to the alignment.
public final class GGUFWriter {
  public let path: String
  /// The metadata actually written: the plan's, plus `general.alignment` when not 32 and
  /// `general.quantization_version` when any tensor is block-quantized.
  public let keyValues: [(key: String, value: GGUFValue)]
  public let alignment: Int
  public let tensors: [GGUFTensorPlan]

  private let temporaryPath: String
  private let output: OutputDestination?
  private let byteCounts: [Int]
  private var fd: Int32
  private var nextTensor = 0
  private var done = false

  /// Writes to an output path a user named, checked by `OutputDestination`, whose rename at
  /// `finish()` re-checks what it replaces.
  public convenience init(
    output: OutputDestination, kvs: [(key: String, value: GGUFValue)], tensors: [GGUFTensorPlan],
    alignment: Int = 32
  ) throws {
    output.removeStaleTemporaries()
    try self.init(path: output.resolvedPath, output: output, kvs: kvs, tensors: tensors, alignment: alignment)
  }

  /// Checks the plan, creates the temporary file and writes the header.
  /// - Parameters:
  ///   - kvs: Metadata in the order to write it.
  ///   - tensors: Tensors in the order their data will be appended.
  ///   - alignment: Data alignment, a power of 2; a `general.alignment` entry in `kvs` wins.
  /// - Throws: `GGUFError.badPlan` for an unwritable plan, `GGUFError.system` for I/O failures.
  public convenience init(
    path: String, kvs: [(key: String, value: GGUFValue)], tensors: [GGUFTensorPlan],
    alignment: Int = 32
  ) throws {
    try self.init(path: path, output: nil, kvs: kvs, tensors: tensors, alignment: alignment)
  }

  private init(
    path: String, output: OutputDestination?, kvs: [(key: String, value: GGUFValue)],
    tensors: [GGUFTensorPlan], alignment: Int
  ) throws {
    self.path = path
    self.output = output
    self.tensors = tensors
    var keyValues = kvs
    var seenKeys: Set<String> = []
    for (key, value) in kvs {
      guard seenKeys.insert(key).inserted else {
        throw GGUFError.badPlan(path: path, defect: "key '\(key)' appears twice")
      }
      if let defect = GGUFWriter.defect(of: value) {
        throw GGUFError.badPlan(path: path, defect: "key '\(key)' \(defect)")
      }
    }
    var effectiveAlignment = alignment
    if let entry = kvs.first(where: { $0.key == GGUFFile.alignmentKey }) {
      guard case .uint32(let value) = entry.value else {
        throw GGUFError.badPlan(
          path: path, defect: "key '\(entry.key)' must be a u32, not \(entry.value.type.name)")
      }
      effectiveAlignment = Int(value)
    } else if alignment != GGUFFile.defaultAlignment, let value = UInt32(exactly: alignment) {
      keyValues.append((GGUFFile.alignmentKey, .uint32(value)))
    }
    guard effectiveAlignment > 0, effectiveAlignment <= Int(UInt32.max),
      effectiveAlignment & (effectiveAlignment - 1) == 0
    else {
      throw GGUFError.badPlan(
        path: path, defect: "alignment \(effectiveAlignment) is not a power of 2")
    }
    self.alignment = effectiveAlignment
    if tensors.contains(where: { $0.type.isBlockQuantized }),
      !seenKeys.contains(GGUFFile.quantizationVersionKey)
    {
      keyValues.append((GGUFFile.quantizationVersionKey, .uint32(2)))
    }
    self.keyValues = keyValues

    var seenNames: Set<String> = []
    var byteCounts: [Int] = []
    for tensor in tensors {
      guard seenNames.insert(tensor.name).inserted else {
        throw GGUFError.badPlan(path: path, defect: "tensor '\(tensor.name)' appears twice")
      }
      guard tensor.shape.count <= GGUFHeader.maximumDimensions else {
        throw GGUFError.badPlan(
          path: path,
          defect: "tensor '\(tensor.name)' has \(tensor.shape.count) dimensions, more than 4")
      }
      guard let count = tensor.type.byteCount(shape: tensor.shape) else {
        throw GGUFError.badPlan(
          path: path,
          defect:
            "tensor '\(tensor.name)' of shape \(tensor.shape) cannot be stored as \(tensor.type.name) "
            + "(row length must be a multiple of \(tensor.type.blockSize), dimensions non-negative)"
        )
      }
      byteCounts.append(count)
    }
    self.byteCounts = byteCounts

    let header = GGUFWriter.header(
      keyValues: keyValues, tensors: tensors, byteCounts: byteCounts, alignment: effectiveAlignment)

    let slash = path.lastIndex(of: "/")
    let directory = slash.map { String(path[...$0]) } ?? ""
    let file = slash.map { String(path[path.index(after: $0)...]) } ?? path
    temporaryPath = "\(directory).\(file).tmp-\(getpid())"
    var created: Int32 = -1
    try TemporaryCleanup.register(temporaryPath) { [temporaryPath] () throws(GGUFError) in
      created = open(temporaryPath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
      guard created >= 0 else { throw GGUFError.system(path: temporaryPath, call: "open", errno: errno) }
    }
    fd = created
    do {
      try header.withUnsafeBytes { try write($0) }
      try writePadding(after: header.count)
    } catch {
      abandon()
      throw error
    }
  }

  deinit { abandon() }

  /// Appends the next tensor's data; `name` must be the next tensor of the plan and `bytes`
  /// exactly its size (whole blocks for quantized types).
  public func append(name: String, bytes: UnsafeRawBufferPointer) throws {
    guard !done, fd >= 0 else {
      throw GGUFError.badPlan(path: path, defect: "writer is already closed")
    }
    do {
      guard nextTensor < tensors.count else {
        throw GGUFError.badPlan(
          path: path, defect: "tensor '\(name)' is not in the plan (all \(tensors.count) written)")
      }
      let planned = tensors[nextTensor]
      guard planned.name == name else {
        throw GGUFError.badPlan(
          path: path, defect: "tensor '\(name)' appended where the plan has '\(planned.name)'")
      }
      guard bytes.count == byteCounts[nextTensor] else {
        throw GGUFError.badPlan(
          path: path,
          defect:
            "tensor '\(name)' has \(bytes.count) bytes, \(planned.type.name) \(planned.shape) needs \(byteCounts[nextTensor])"
        )
      }
      try write(bytes)
      try writePadding(after: bytes.count)
      nextTensor += 1
    } catch {
      abandon()
      throw error
    }
  }

  /// Appends the next tensor's data in pieces, so a tensor passes through a block of rows at a
  /// time: `body` hands the bytes, in order, to the closure it is given, and together they must
  /// be exactly the planned size. Any failure abandons the file.
  public func append(
    name: String, inPieces body: (_ write: (UnsafeRawBufferPointer) throws -> Void) throws -> Void
  ) throws {
    guard !done, fd >= 0 else {
      throw GGUFError.badPlan(path: path, defect: "writer is already closed")
    }
    do {
      guard nextTensor < tensors.count else {
        throw GGUFError.badPlan(
          path: path, defect: "tensor '\(name)' is not in the plan (all \(tensors.count) written)")
      }
      let planned = tensors[nextTensor]
      guard planned.name == name else {
        throw GGUFError.badPlan(
          path: path, defect: "tensor '\(name)' appended where the plan has '\(planned.name)'")
      }
      let expected = byteCounts[nextTensor]
      var written = 0
      try body { bytes in
        guard written + bytes.count <= expected else {
          throw GGUFError.badPlan(
            path: self.path,
            defect: "tensor '\(name)' has more than \(expected) bytes, the size of \(planned.type.name) \(planned.shape)")
        }
        try self.write(bytes)
        written += bytes.count
      }
      guard written == expected else {
        throw GGUFError.badPlan(
          path: path,
          defect: "tensor '\(name)' has \(written) bytes, \(planned.type.name) \(planned.shape) needs \(expected)")
      }
      try writePadding(after: expected)
      nextTensor += 1
    } catch {
      abandon()
      throw error
    }
  }

  /// Appends the next tensor's data from an array.
  public func append(name: String, bytes: [UInt8]) throws {
    try bytes.withUnsafeBytes { try append(name: name, bytes: $0) }
  }

  /// Syncs the file to disk and renames it over the destination.
  public func finish() throws {
    guard !done, fd >= 0 else {
      throw GGUFError.badPlan(path: path, defect: "writer is already closed")
    }
    do {
      guard nextTensor == tensors.count else {
        throw GGUFError.badPlan(
          path: path,
          defect:
            "finished after \(nextTensor) of \(tensors.count) tensors, next is '\(tensors[nextTensor].name)'"
        )
      }
      guard fsync(fd) == 0 else {
        throw GGUFError.system(path: temporaryPath, call: "fsync", errno: errno)
      }
      let closed = close(fd)
      fd = -1
      guard closed == 0 else {
        throw GGUFError.system(path: temporaryPath, call: "close", errno: errno)
      }
      if let output {
        do { try output.install(from: temporaryPath) } catch { throw GGUFError.output(error) }
      } else {
        do { try OutputDestination.refuseSpecialFile(at: path) } catch { throw GGUFError.output(error) }
        if rename(temporaryPath, path) != 0 { throw GGUFError.system(path: path, call: "rename", errno: errno) }
      }
      done = true
      TemporaryCleanup.unregister(temporaryPath)
    } catch {
      abandon()
      throw error
    }
  }

  /// Closes and removes the temporary file unless it has been renamed into place.
  private func abandon() {
    guard !done else { return }
    done = true
    if fd >= 0 {
      close(fd)
      fd = -1
    }
    unlink(temporaryPath)
    TemporaryCleanup.unregister(temporaryPath)
  }

  private func write(_ bytes: UnsafeRawBufferPointer) throws {
    guard let start = bytes.baseAddress else { return }
    var written = 0
    while written < bytes.count {
      let result = Glibc.write(fd, start + written, bytes.count - written)
      if result < 0 {
        if errno == EINTR { continue }
        throw GGUFError.system(path: temporaryPath, call: "write", errno: errno)
      }
      written += result
    }
  }

  private func writePadding(after count: Int) throws {
    let padding = (alignment - count % alignment) % alignment
    guard padding > 0 else { return }
    try [UInt8](repeating: 0, count: padding).withUnsafeBytes { try write($0) }
  }

  /// Why `value` cannot be written (array elements of the wrong type), or `nil`.
  static func defect(of value: GGUFValue) -> String? {
    guard case .array(let elementType, let items) = value else { return nil }
    for item in items {
      guard item.type == elementType else {
        return "is an array of \(elementType.name) holding a \(item.type.name)"
      }
      if let defect = defect(of: item) { return defect }
    }
    return nil
  }

  /// The bytes before the data section: magic, version, counts, metadata, tensor infos.
  static func header(
    keyValues: [(key: String, value: GGUFValue)], tensors: [GGUFTensorPlan], byteCounts: [Int],
    alignment: Int
  ) -> [UInt8] {
    var out: [UInt8] = GGUFFile.magic
    out.appendGGUFInteger(UInt32(3))
    out.appendGGUFInteger(UInt64(tensors.count))
    out.appendGGUFInteger(UInt64(keyValues.count))
    for (key, value) in keyValues {
      out.appendGGUFString(key)
      out.appendGGUFInteger(value.type.rawValue)
      out.appendGGUFValue(value)
    }
    var offset = 0
    for (tensor, byteCount) in zip(tensors, byteCounts) {
      out.appendGGUFString(tensor.name)
      out.appendGGUFInteger(UInt32(tensor.shape.count))
      for dim in tensor.shape.reversed() { out.appendGGUFInteger(UInt64(dim)) }
      out.appendGGUFInteger(tensor.type.rawValue)
      out.appendGGUFInteger(UInt64(offset))
      offset += (byteCount + alignment - 1) / alignment * alignment
    }
    return out
  }
}

extension [UInt8] {
  mutating func appendGGUFInteger<T: FixedWidthInteger>(_ value: T) {
    Swift.withUnsafeBytes(of: value.littleEndian) { append(contentsOf: $0) }
  }

  mutating func appendGGUFString(_ string: String) {
    appendGGUFInteger(UInt64(string.utf8.count))
    append(contentsOf: string.utf8)
  }

  mutating func appendGGUFValue(_ value: GGUFValue) {
    switch value {
    case .uint8(let v): appendGGUFInteger(v)
    case .int8(let v): appendGGUFInteger(v)
    case .uint16(let v): appendGGUFInteger(v)
    case .int16(let v): appendGGUFInteger(v)
    case .uint32(let v): appendGGUFInteger(v)
    case .int32(let v): appendGGUFInteger(v)
    case .float32(let v): appendGGUFInteger(v.bitPattern)
    case .bool(let v): append(v ? 1 : 0)
    case .string(let s): appendGGUFString(s)
    case .uint64(let v): appendGGUFInteger(v)
    case .int64(let v): appendGGUFInteger(v)
    case .float64(let v): appendGGUFInteger(v.bitPattern)
    case .array(let elementType, let items):
      appendGGUFInteger(elementType.rawValue)
      appendGGUFInteger(UInt64(items.count))
      for item in items { appendGGUFValue(item) }
    }
  }
}
