/// The type tag GGUF stores before every metadata value (and before an array's elements).
public enum GGUFValueType: UInt32, Sendable, CaseIterable, Hashable {
  case uint8 = 0
  case int8 = 1
  case uint16 = 2
  case int16 = 3
  case uint32 = 4
  case int32 = 5
  case float32 = 6
  case bool = 7
  case string = 8
  case array = 9
  case uint64 = 10
  case int64 = 11
  case float64 = 12

  /// The short spelling used in summaries (`[151936 x string]`).
  public var name: String {
    switch self {
    case .uint8: "u8"
    case .int8: "i8"
    case .uint16: "u16"
    case .int16: "i16"
    case .uint32: "u32"
    case .int32: "i32"
    case .float32: "f32"
    case .bool: "bool"
    case .string: "string"
    case .array: "array"
    case .uint64: "u64"
    case .int64: "i64"
    case .float64: "f64"
    }
  }

  /// Bytes of a fixed-size value, `nil` for strings and arrays.
  var fixedSize: Int? {
    switch self {
    case .uint8, .int8, .bool: 1
    case .uint16, .int16: 2
    case .uint32, .int32, .float32: 4
    case .uint64, .int64, .float64: 8
    case .string, .array: nil
    }
  }

  /// The fewest bytes one value of this type can occupy, to bound counts read from a file.
  var minimumSize: Int {
    switch self {
    case .string: 8  // u64 length
    case .array: 12  // u32 element type + u64 count
    default: fixedSize ?? 1
    }
  }
}

/// One metadata value of a GGUF file, typed as stored.
public indirect enum GGUFValue: Sendable, Hashable {
  case uint8(UInt8)
  case int8(Int8)
  case uint16(UInt16)
  case int16(Int16)
  case uint32(UInt32)
  case int32(Int32)
  case float32(Float)
  case bool(Bool)
  case string(String)
  /// Every element has type `elementType`; arrays of arrays are allowed.
  case array(elementType: GGUFValueType, [GGUFValue])
  case uint64(UInt64)
  case int64(Int64)
  case float64(Double)

  public var type: GGUFValueType {
    switch self {
    case .uint8: .uint8
    case .int8: .int8
    case .uint16: .uint16
    case .int16: .int16
    case .uint32: .uint32
    case .int32: .int32
    case .float32: .float32
    case .bool: .bool
    case .string: .string
    case .array: .array
    case .uint64: .uint64
    case .int64: .int64
    case .float64: .float64
    }
  }

  /// The value of any integer case, when it fits in `Int`.
  public var intValue: Int? {
    switch self {
    case .uint8(let v): Int(v)
    case .int8(let v): Int(v)
    case .uint16(let v): Int(v)
    case .int16(let v): Int(v)
    case .uint32(let v): Int(v)
    case .int32(let v): Int(v)
    case .uint64(let v): Int(exactly: v)
    case .int64(let v): Int(v)
    default: nil
    }
  }

  /// The string, for `.string`.
  public var stringValue: String? {
    if case .string(let s) = self { s } else { nil }
  }

  /// Arrays longer than this are summarised as `[N x type]` in rendered metadata.
  public static let summaryThreshold = 16

  /// A one-line rendering for metadata listings; strings inside arrays are quoted.
  public var rendered: String { render(quoted: false) }

  private func render(quoted: Bool) -> String {
    switch self {
    case .uint8(let v): String(v)
    case .int8(let v): String(v)
    case .uint16(let v): String(v)
    case .int16(let v): String(v)
    case .uint32(let v): String(v)
    case .int32(let v): String(v)
    case .float32(let v): String(v)
    case .bool(let v): String(v)
    case .string(let s): quoted ? "\"\(s)\"" : s
    case .uint64(let v): String(v)
    case .int64(let v): String(v)
    case .float64(let v): String(v)
    case .array(let elementType, let items):
      items.count > GGUFValue.summaryThreshold
        ? "[\(items.count) x \(elementType.name)]"
        : "[" + items.map { $0.render(quoted: true) }.joined(separator: ", ") + "]"
    }
  }
}
