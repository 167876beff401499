#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

/// Writes a safetensors file tensor by tensor, holding at most one tensor in memory.
///
/// The plan (names, dtypes, shapes) comes first, so the header is written before any data;
/// then every tensor is appended in `order`, then `finish()` makes the file visible. To a
/// path the file is written atomically (see `AtomicFile`); to `-` it streams to standard
/// output. The header matches the reference writer byte for byte: `__metadata__` first, the
/// JSON padded with spaces to a multiple of 8 so every tensor is naturally aligned.
public final class SafetensorsWriter {
  /// How tensors are laid out in the file.
  public enum Order: Sendable {
    /// As the reference writer sorts: larger dtype alignment first, then by name.
    case reference
    /// The plan's order.
    case asGiven
  }

  public let location: String
  /// The tensors in the order `append` expects them.
  public let order: [TensorInfo]
  /// The size the finished file will have.
  public let fileSize: Int

  private let sink: Sink
  private var next = 0
  private var buffer: [UInt8] = []
  private var finished = false
  /// The first write error; once set, every later call rethrows it, so a retried append can
  /// never commit a file with a tensor half-written.
  private var failure: SafetensorsError?
  private static let bufferLimit = 1 << 20

  private enum Sink {
    case file(AtomicFile)
    /// A stream the caller owns (standard output, a pipe): written in order, not atomic.
    case descriptor(Int32)
  }

  /// Validates the plan, creates the (temporary) file and writes the header.
  ///
  /// - Parameters:
  ///   - path: the destination, or `-` for standard output.
  ///   - metadata: added to `__metadata__` beside `format: pt` (a `format` key here wins).
  /// - Throws: `SafetensorsError.invalidPlan` for duplicate or reserved names, negative or
  ///   overflowing shapes; `.system` when the file cannot be created or written.
  public init(path: String, plan: [TensorInfo], metadata: [String: String] = [:], order: Order = .reference) throws {
    location = path
    let (header, ordered) = try Self.header(plan: plan, metadata: metadata, order: order, location: path)
    self.order = ordered
    fileSize = header.count + ordered.reduce(0) { $0 + $1.byteCount }
    sink = path == "-" ? .descriptor(STDOUT_FILENO) : .file(try AtomicFile(destination: path))
    buffer = header
    if buffer.count >= Self.bufferLimit { try flush() }
  }

  /// Streams the file to an open descriptor the caller owns (a pipe, a socket); not atomic,
  /// and the descriptor is left open.
  ///
  /// - Parameter location: how messages name the stream.
  public init(
    streamingTo descriptor: Int32, location: String, plan: [TensorInfo], metadata: [String: String] = [:],
    order: Order = .reference
  ) throws {
    self.location = location
    let (header, ordered) = try Self.header(plan: plan, metadata: metadata, order: order, location: location)
    self.order = ordered
    fileSize = header.count + ordered.reduce(0) { $0 + $1.byteCount }
    sink = .descriptor(descriptor)
    buffer = header
    if buffer.count >= Self.bufferLimit { try flush() }
  }

  /// The complete header (length prefix, JSON, padding) and the layout order for a plan.
  public static func header(
    plan: [TensorInfo], metadata: [String: String] = [:], order: Order = .reference, location: String = "-"
  ) throws(SafetensorsError) -> (bytes: [UInt8], order: [TensorInfo]) {
    var seen = Set<String>()
    for tensor in plan {
      if tensor.name == "__metadata__" {
        throw .invalidPlan(location: location, reason: "a tensor cannot be named '__metadata__'")
      }
      if !seen.insert(tensor.name).inserted {
        throw .invalidPlan(location: location, reason: "the plan names tensor '\(tensor.name)' twice")
      }
      var bytes = tensor.dtype.byteSize
      for dim in tensor.shape {
        let (product, overflow) = bytes.multipliedReportingOverflow(by: dim)
        if dim < 0 || overflow {
          throw .invalidPlan(location: location, reason: "tensor '\(tensor.name)' has invalid shape \(tensor.shape)")
        }
        bytes = product
      }
    }
    let ordered =
      switch order {
      case .asGiven: plan
      case .reference:
        plan.sorted {
          $0.dtype.alignmentRank != $1.dtype.alignmentRank
            ? $0.dtype.alignmentRank > $1.dtype.alignmentRank
            : $0.name.utf8.lexicographicallyPrecedes($1.name.utf8)
        }
      }
    var fullMetadata = ["format": "pt"]
    fullMetadata.merge(metadata) { _, caller in caller }
    var json: [UInt8] = Array("{\"__metadata__\":{".utf8)
    for (i, key) in fullMetadata.keys.sorted(by: { $0.utf8.lexicographicallyPrecedes($1.utf8) }).enumerated() {
      if i > 0 { json.append(UInt8(ascii: ",")) }
      _appendJSONString(key, to: &json)
      json.append(UInt8(ascii: ":"))
      _appendJSONString(fullMetadata[key] ?? "", to: &json)
    }
    json.append(UInt8(ascii: "}"))
    var offset = 0
    for tensor in ordered {
      json.append(UInt8(ascii: ","))
      _appendJSONString(tensor.name, to: &json)
      json.append(contentsOf: ":{\"dtype\":\"\(tensor.dtype.rawValue)\",\"shape\":[".utf8)
      json.append(contentsOf: tensor.shape.map(String.init).joined(separator: ",").utf8)
      json.append(contentsOf: "],\"data_offsets\":[\(offset),\(offset + tensor.byteCount)]}".utf8)
      offset += tensor.byteCount
    }
    json.append(UInt8(ascii: "}"))
    json += [UInt8](repeating: 0x20, count: (8 - json.count % 8) % 8)
    if UInt64(json.count) > SafetensorsHeader.maximumHeaderLength {
      throw .invalidPlan(location: location, reason: "the header would be \(json.count) bytes, over the 100000000-byte limit readers accept")
    }
    var bytes = withUnsafeBytes(of: UInt64(json.count).littleEndian) { Array($0) }
    bytes += json
    return (bytes, ordered)
  }

  /// Appends the next tensor's raw little-endian bytes.
  ///
  /// - Throws: `.unexpectedTensor` when `name` is not the next in `order`, `.wrongByteCount`
  ///   when the byte count does not match its dtype and shape; neither changes the file.
  public func append(name: String, bytes: UnsafeRawBufferPointer) throws {
    if let failure { throw failure }
    guard next < order.count else {
      throw SafetensorsError.unexpectedTensor(location: location, tensor: name, expected: nil)
    }
    let expected = order[next]
    guard expected.name == name else {
      throw SafetensorsError.unexpectedTensor(location: location, tensor: name, expected: expected.name)
    }
    guard bytes.count == expected.byteCount else {
      throw SafetensorsError.wrongByteCount(location: location, tensor: name, expected: expected.byteCount, actual: bytes.count)
    }
    if buffer.count + bytes.count <= Self.bufferLimit {
      buffer.append(contentsOf: bytes)
    } else {
      try flush()
      try write(bytes)
    }
    next += 1
  }

  /// Appends the next tensor in pieces, so a tensor larger than memory should hold passes
  /// through a block at a time: `body` hands its bytes, in order, to the closure it is given,
  /// and together they must be exactly the tensor's size.
  ///
  /// - Throws: `.unexpectedTensor` as `append(name:bytes:)`; `.wrongByteCount` when the pieces
  ///   add up to another size; whatever `body` throws. Once a piece is written any failure is
  ///   final: later calls rethrow it and the file is never committed.
  public func append(
    name: String, inPieces body: (_ write: (UnsafeRawBufferPointer) throws -> Void) throws -> Void
  ) throws {
    if let failure { throw failure }
    guard next < order.count else {
      throw SafetensorsError.unexpectedTensor(location: location, tensor: name, expected: nil)
    }
    let expected = order[next]
    guard expected.name == name else {
      throw SafetensorsError.unexpectedTensor(location: location, tensor: name, expected: expected.name)
    }
    var written = 0
    do {
      try body { bytes in
        guard written + bytes.count <= expected.byteCount else {
          throw SafetensorsError.wrongByteCount(
            location: self.location, tensor: name, expected: expected.byteCount, actual: written + bytes.count)
        }
        written += bytes.count
        if self.buffer.count + bytes.count <= Self.bufferLimit {
          self.buffer.append(contentsOf: bytes)
        } else {
          try self.flush()
          try self.write(bytes)
        }
      }
      guard written == expected.byteCount else {
        throw SafetensorsError.wrongByteCount(
          location: location, tensor: name, expected: expected.byteCount, actual: written)
      }
    } catch {
      if failure == nil {
        failure = .wrongByteCount(location: location, tensor: name, expected: expected.byteCount, actual: written)
        if case .file(let file) = sink { file.abandon() }
      }
      throw error
    }
    next += 1
  }

  /// Appends the next tensor's raw little-endian bytes.
  public func append(name: String, bytes: [UInt8]) throws {
    try bytes.withUnsafeBytes { try append(name: name, bytes: $0) }
  }

  /// Appends the next tensor from floats, narrowed to its planned floating-point dtype.
  public func append(name: String, converting values: UnsafeBufferPointer<Float>, saturatingF8: Bool = false) throws {
    guard next < order.count, order[next].name == name else {
      throw SafetensorsError.unexpectedTensor(location: location, tensor: name, expected: next < order.count ? order[next].name : nil)
    }
    let tensor = order[next]
    guard tensor.dtype.isFloatingPoint else {
      throw SafetensorsError.invalidPlan(location: location, reason: "tensor '\(name)' is \(tensor.dtype.rawValue), which floats cannot be narrowed to")
    }
    guard values.count == tensor.elementCount else {
      throw SafetensorsError.wrongByteCount(
        location: location, tensor: name, expected: tensor.byteCount, actual: values.count * tensor.dtype.byteSize)
    }
    let scratch = UnsafeMutableRawBufferPointer.allocate(byteCount: tensor.byteCount, alignment: 16)
    defer { scratch.deallocate() }
    DTypeConversion.narrow(values, to: tensor.dtype, into: scratch, saturatingF8: saturatingF8)
    try append(name: name, bytes: UnsafeRawBufferPointer(scratch))
  }

  /// Writes what remains buffered and, for a path, renames the file into place.
  ///
  /// - Throws: `.unfinished` when planned tensors were never appended (the destination is
  ///   then left untouched).
  public func finish() throws {
    guard !finished else { return }
    if let failure { throw failure }
    if next < order.count {
      throw SafetensorsError.unfinished(location: location, missing: order[next...].map(\.name))
    }
    try flush()
    if case .file(let file) = sink {
      do {
        try file.commit()
      } catch {
        failure = error
        throw error
      }
    }
    finished = true
  }

  private func flush() throws {
    guard !buffer.isEmpty else { return }
    try buffer.withUnsafeBytes { try write($0) }
    buffer.removeAll(keepingCapacity: true)
  }

  private func write(_ bytes: UnsafeRawBufferPointer) throws(SafetensorsError) {
    do {
      switch sink {
      case .file(let file): try file.write(bytes)
      case .descriptor(let descriptor): try _writeAll(descriptor, bytes, location: location)
      }
    } catch {
      failure = error
      if case .file(let file) = sink { file.abandon() }
      throw error
    }
  }
}

/// Appends `text` as a JSON string the way serde_json writes it: `"` and `\` escaped,
/// control characters as `\n`-style or `\u00XX` escapes, everything else verbatim UTF-8.
func _appendJSONString(_ text: String, to json: inout [UInt8]) {
  json.append(UInt8(ascii: "\""))
  for byte in text.utf8 {
    switch byte {
    case UInt8(ascii: "\""): json += [0x5C, 0x22]
    case UInt8(ascii: "\\"): json += [0x5C, 0x5C]
    case 0x0A: json += [0x5C, UInt8(ascii: "n")]
    case 0x0D: json += [0x5C, UInt8(ascii: "r")]
    case 0x09: json += [0x5C, UInt8(ascii: "t")]
    case 0x08: json += [0x5C, UInt8(ascii: "b")]
    case 0x0C: json += [0x5C, UInt8(ascii: "f")]
    case 0..<0x20:
      let hex = Array("0123456789abcdef".utf8)
      json += Array("\\u00".utf8) + [hex[Int(byte >> 4)], hex[Int(byte & 15)]]
    default: json.append(byte)
    }
  }
  json.append(UInt8(ascii: "\""))
}
