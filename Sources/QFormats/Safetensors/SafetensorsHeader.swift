/// One tensor of a safetensors file and where its bytes lie.
public struct SafetensorsEntry: Sendable, Hashable {
  public var info: TensorInfo
  /// The `data_offsets`, relative to the start of the data section.
  public var dataRange: Range<Int>
}

/// A parsed and fully validated safetensors header.
///
/// The checks mirror the reference reader (`read_metadata` and `Metadata::validate`), plus
/// duplicate names, a tensor named `__metadata__`, and a friendly name for files that are
/// something else entirely.
struct SafetensorsHeader {
  /// Entries in data order (by offsets, then header order for empty tensors).
  var entries: [SafetensorsEntry]
  var metadata: [String: String]
  /// Bytes before the data section: 8 plus the header length.
  var dataStart: Int

  static let maximumHeaderLength: UInt64 = 100_000_000

  /// Parses and validates the complete file `bytes`.
  static func read(_ bytes: UnsafeRawBufferPointer, location: String) throws(SafetensorsError) -> SafetensorsHeader {
    let (header, dataLength) = try readPrefix(bytes, location: location)
    let available = bytes.count - header.dataStart
    if dataLength > available {
      let (needed, overflow) = header.dataStart.addingReportingOverflow(dataLength)
      throw .truncated(location: location, expectedSize: overflow ? .max : needed, actualSize: bytes.count)
    }
    if dataLength < available {
      throw .trailingBytes(location: location, count: available - dataLength)
    }
    return header
  }

  /// Parses and validates the header at the start of `bytes`, which must hold at least the
  /// length and the header itself; returns it with the data length its tensors need, which
  /// the caller checks against what follows.
  static func readPrefix(
    _ bytes: UnsafeRawBufferPointer, location: String
  ) throws(SafetensorsError) -> (header: SafetensorsHeader, dataLength: Int) {
    func foreignOr(_ error: SafetensorsError) -> SafetensorsError {
      if let format = ForeignFormatSniffer.describe(bytes) {
        return .foreignFormat(location: location, format: format)
      }
      return error
    }
    if bytes.isEmpty { throw .emptyFile(location: location) }
    if bytes.count < 8 { throw foreignOr(.fileTooSmall(location: location, size: bytes.count)) }
    let length = UInt64(littleEndian: bytes.loadUnaligned(as: UInt64.self))
    if length > maximumHeaderLength { throw foreignOr(.headerTooLarge(location: location, length: length)) }
    // `length` is at most 1e8 here, so `8 + length` cannot overflow.
    let dataStart = 8 + Int(length)
    if dataStart > bytes.count {
      throw foreignOr(.headerPastEnd(location: location, length: length, fileSize: bytes.count))
    }
    let headerBytes = UnsafeRawBufferPointer(rebasing: bytes[8..<dataStart])
    if !isValidUTF8(headerBytes) { throw foreignOr(.headerNotUTF8(location: location)) }
    let json: HeaderJSON
    do {
      json = try HeaderJSONParser.parse(headerBytes)
    } catch {
      switch error.kind {
      case .duplicateKey(let key): throw .duplicateKey(location: location, key: key)
      case .syntax(let reason):
        throw foreignOr(.invalidJSON(location: location, offset: error.offset, reason: reason))
      }
    }
    guard case .object(let members) = json else { throw .headerNotObject(location: location) }

    var metadata: [String: String] = [:]
    var unordered: [SafetensorsEntry] = []
    unordered.reserveCapacity(members.count)
    for member in members {
      let (key, value) = (member.key, member.value)
      if key == "__metadata__" {
        metadata = try parseMetadata(value, location: location)
      } else {
        unordered.append(try parseEntry(key, value, location: location))
      }
    }

    let entries = unordered.enumerated().sorted {
      ($0.element.dataRange.lowerBound, $0.element.dataRange.upperBound, $0.offset)
        < ($1.element.dataRange.lowerBound, $1.element.dataRange.upperBound, $1.offset)
    }.map(\.element)
    var expectedBegin = 0
    for (position, entry) in entries.enumerated() {
      let (begin, end) = (entry.dataRange.lowerBound, entry.dataRange.upperBound)
      let name = entry.info.name
      if begin != expectedBegin {
        let reason =
          position == 0
          ? "the first tensor's data must start at 0"
          : begin > expectedBegin
            ? "leaves a gap after the previous tensor, which ends at \(expectedBegin)"
            : "overlaps the previous tensor, which ends at \(expectedBegin)"
        throw .invalidOffsets(location: location, tensor: name, begin: begin, end: end, reason: reason)
      }
      if entry.dataRange.count != entry.info.byteCount {
        throw .sizeMismatch(
          location: location, tensor: name, dtype: entry.info.dtype, shape: entry.info.shape,
          expected: entry.info.byteCount, actual: entry.dataRange.count)
      }
      expectedBegin = end
    }
    return (SafetensorsHeader(entries: entries, metadata: metadata, dataStart: dataStart), expectedBegin)
  }

  private static func isValidUTF8(_ bytes: UnsafeRawBufferPointer) -> Bool {
    if bytes.allSatisfy({ $0 < 0x80 }) { return true }
    return String(validating: bytes, as: UTF8.self) != nil
  }

  private static func parseMetadata(_ value: HeaderJSON, location: String) throws(SafetensorsError) -> [String: String] {
    guard case .object(let members) = value else {
      throw .invalidMetadata(location: location, key: "", reason: "is \(value.kindDescription), not an object of strings")
    }
    let keys = Set(members.map(\.key))
    if keys.contains("data_offsets") || (keys.contains("dtype") && keys.contains("shape")) {
      throw .reservedTensorName(location: location)
    }
    var metadata: [String: String] = [:]
    for member in members {
      let (key, value) = (member.key, member.value)
      guard case .string(let text) = value else {
        throw .invalidMetadata(location: location, key: key, reason: "is \(value.kindDescription), not a string")
      }
      metadata[key] = text
    }
    return metadata
  }

  private static func parseEntry(_ name: String, _ value: HeaderJSON, location: String) throws(SafetensorsError) -> SafetensorsEntry {
    func invalid(_ reason: String) -> SafetensorsError {
      .invalidEntry(location: location, tensor: name, reason: reason)
    }
    guard case .object(let members) = value else {
      throw invalid("is \(value.kindDescription), not an object with dtype, shape and data_offsets")
    }
    func field(_ key: String) throws(SafetensorsError) -> HeaderJSON {
      guard let found = members.first(where: { $0.key == key }) else { throw invalid("has no '\(key)'") }
      return found.value
    }
    guard case .string(let dtypeName) = try field("dtype") else {
      throw invalid("has a dtype that is \(try field("dtype").kindDescription), not a string")
    }
    guard let dtype = DType(rawValue: dtypeName) else {
      throw .unknownDType(location: location, tensor: name, dtype: dtypeName)
    }
    let shapeValue = try field("shape")
    guard case .array(let dims) = shapeValue else {
      throw invalid("has a shape that is \(shapeValue.kindDescription), not an array")
    }
    var shape: [Int] = []
    shape.reserveCapacity(dims.count)
    for dim in dims {
      switch dim {
      case .integer(let n) where n >= 0: shape.append(n)
      case .integer(let n): throw invalid("has a negative dimension \(n) in its shape")
      case .otherNumber(let text): throw invalid("has a dimension \(text) that is not a non-negative integer")
      default: throw invalid("has a dimension that is \(dim.kindDescription), not an integer")
      }
    }
    let offsetsValue = try field("data_offsets")
    guard case .array(let offsets) = offsetsValue, offsets.count == 2,
      case .integer(let begin) = offsets[0], case .integer(let end) = offsets[1], begin >= 0, end >= 0
    else {
      throw invalid("has data_offsets that are not two non-negative integers")
    }
    var bytes = dtype.byteSize
    for dim in shape {
      let (product, overflow) = bytes.multipliedReportingOverflow(by: dim)
      if overflow { throw .shapeOverflow(location: location, tensor: name, shape: shape) }
      bytes = product
    }
    if end < begin {
      throw .invalidOffsets(location: location, tensor: name, begin: begin, end: end, reason: "end is before begin")
    }
    return SafetensorsEntry(info: TensorInfo(name: name, dtype: dtype, shape: shape), dataRange: begin..<end)
  }
}
