/// The element types a checkpoint can hold, spelled as safetensors spells them.
public enum DType: String, Sendable, CaseIterable, Codable {
  case f64 = "F64"
  case f32 = "F32"
  case f16 = "F16"
  case bf16 = "BF16"
  case f8E4M3 = "F8_E4M3"
  case f8E5M2 = "F8_E5M2"
  case i64 = "I64"
  case i32 = "I32"
  case i16 = "I16"
  case i8 = "I8"
  case u64 = "U64"
  case u32 = "U32"
  case u16 = "U16"
  case u8 = "U8"
  case bool = "BOOL"

  /// Bytes per element.
  public var byteSize: Int {
    switch self {
    case .f64, .i64, .u64: 8
    case .f32, .i32, .u32: 4
    case .f16, .bf16, .i16, .u16: 2
    case .f8E4M3, .f8E5M2, .i8, .u8, .bool: 1
    }
  }

  /// Whether the type is a floating-point type (the ones we quantize and take statistics of).
  public var isFloatingPoint: Bool {
    switch self {
    case .f64, .f32, .f16, .bf16, .f8E4M3, .f8E5M2: true
    default: false
    }
  }

  /// The order the reference safetensors writer sorts by: larger alignment first.
  public var alignmentRank: Int {
    switch self {
    case .bool: 0
    case .u8: 1
    case .i8: 2
    case .f8E5M2: 3
    case .f8E4M3: 4
    case .i16: 5
    case .u16: 6
    case .f16: 7
    case .bf16: 8
    case .i32: 9
    case .u32: 10
    case .f32: 11
    case .f64: 12
    case .i64: 13
    case .u64: 14
    }
  }
}
