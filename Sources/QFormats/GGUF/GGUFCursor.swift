/// Where in the file a field is being read, so errors name the key or tensor.
enum GGUFContext {
  case header
  case keyName(index: Int)
  case key(String)
  case tensorName(index: Int)
  case tensor(String)

  var label: String {
    switch self {
    case .header: "header"
    case .keyName(let index): "name of metadata entry \(index)"
    case .key(let key): "value of key '\(key)'"
    case .tensorName(let index): "name of tensor info \(index)"
    case .tensor(let name): "info of tensor '\(name)'"
    }
  }

  func error(_ path: String, _ defect: String) -> GGUFError {
    switch self {
    case .header: .badHeader(path: path, defect: defect)
    case .keyName(let index): .badHeader(path: path, defect: "metadata entry \(index) \(defect)")
    case .key(let key): .badKey(path: path, key: key, defect: defect)
    case .tensorName(let index): .badHeader(path: path, defect: "tensor info \(index) \(defect)")
    case .tensor(let name): .badTensor(path: path, tensor: name, defect: defect)
    }
  }
}

/// A bounds-checked little-endian reader over the mapped header bytes.
struct GGUFCursor {
  let bytes: UnsafeRawBufferPointer
  let path: String
  private(set) var offset = 0

  init(bytes: UnsafeRawBufferPointer, path: String) {
    self.bytes = bytes
    self.path = path
  }

  var remaining: Int { bytes.count - offset }

  /// Deepest array nesting accepted, so a hostile file cannot exhaust the stack.
  static let maximumNesting = 8

  mutating func take(_ count: Int, _ context: GGUFContext) throws -> UnsafeRawBufferPointer {
    guard count <= remaining else {
      throw GGUFError.truncated(
        path: path, what: context.label, offset: offset, fileSize: bytes.count)
    }
    let slice = UnsafeRawBufferPointer(rebasing: bytes[offset..<(offset + count)])
    offset += count
    return slice
  }

  mutating func scalar<T: FixedWidthInteger>(_: T.Type, _ context: GGUFContext) throws -> T {
    let raw = try take(MemoryLayout<T>.size, context)
    return T(littleEndian: raw.loadUnaligned(as: T.self))
  }

  mutating func u32(_ context: GGUFContext) throws -> UInt32 { try scalar(UInt32.self, context) }
  mutating func u64(_ context: GGUFContext) throws -> UInt64 { try scalar(UInt64.self, context) }

  /// A u64 count, checked to fit in what is left of the file at `minimumSize` bytes per item.
  mutating func count(_ context: GGUFContext, of what: String, minimumSize: Int) throws -> Int {
    let start = offset
    let raw = try u64(context)
    guard raw <= UInt64(remaining / max(minimumSize, 1)) else {
      throw context.error(
        path,
        "has \(what) \(raw) beyond the end of the file (offset \(start), file size \(bytes.count))")
    }
    return Int(raw)
  }

  /// The raw bytes of a GGUF string (u64 length, then UTF-8 bytes).
  mutating func stringBytes(_ context: GGUFContext) throws -> UnsafeRawBufferPointer {
    let length = try count(context, of: "string length", minimumSize: 1)
    return try take(length, context)
  }

  /// A string that must be valid UTF-8 (keys and tensor names).
  mutating func strictString(_ context: GGUFContext) throws -> String {
    let raw = try stringBytes(context)
    guard let string = String(validating: raw, as: UTF8.self) else {
      throw context.error(path, "is not valid UTF-8")
    }
    return string
  }

  mutating func valueType(_ context: GGUFContext) throws -> GGUFValueType {
    let raw = try u32(context)
    guard let type = GGUFValueType(rawValue: raw) else {
      throw context.error(path, "has unknown value type \(raw)")
    }
    return type
  }

  /// One metadata value of `type`; string values that are not UTF-8 are repaired, not rejected.
  mutating func value(of type: GGUFValueType, _ context: GGUFContext, depth: Int = 0) throws
    -> GGUFValue
  {
    switch type {
    case .uint8: return .uint8(try scalar(UInt8.self, context))
    case .int8: return .int8(try scalar(Int8.self, context))
    case .uint16: return .uint16(try scalar(UInt16.self, context))
    case .int16: return .int16(try scalar(Int16.self, context))
    case .uint32: return .uint32(try scalar(UInt32.self, context))
    case .int32: return .int32(try scalar(Int32.self, context))
    case .float32: return .float32(Float(bitPattern: try scalar(UInt32.self, context)))
    case .uint64: return .uint64(try scalar(UInt64.self, context))
    case .int64: return .int64(try scalar(Int64.self, context))
    case .float64: return .float64(Double(bitPattern: try scalar(UInt64.self, context)))
    case .bool:
      let start = offset
      let raw = try scalar(UInt8.self, context)
      guard raw <= 1 else {
        throw context.error(path, "has bool value \(raw) at offset \(start) (must be 0 or 1)")
      }
      return .bool(raw == 1)
    case .string:
      return .string(String(decoding: try stringBytes(context), as: UTF8.self))
    case .array:
      guard depth < GGUFCursor.maximumNesting else {
        throw context.error(path, "has arrays nested deeper than \(GGUFCursor.maximumNesting)")
      }
      let elementType = try valueType(context)
      let n = try count(context, of: "array length", minimumSize: elementType.minimumSize)
      var items: [GGUFValue] = []
      items.reserveCapacity(n)
      for _ in 0..<n {
        items.append(try value(of: elementType, context, depth: depth + 1))
      }
      return .array(elementType: elementType, items)
    }
  }
}
