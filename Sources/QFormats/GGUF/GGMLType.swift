/// The tensor element types a GGUF file can name, with ggml's type ids as raw values.
///
/// Block-quantized types pack `blockSize` elements into `bytesPerBlock` bytes; plain types
/// have a block of one element. Sizes follow ggml's `GGML_QUANT_SIZES`. Ids that ggml has
/// retired (4, 5, 31, 32, 33) are deliberately absent, so files using them are rejected.
public enum GGMLType: UInt32, Sendable, CaseIterable, Hashable {
  case f32 = 0
  case f16 = 1
  case q4_0 = 2
  case q4_1 = 3
  case q5_0 = 6
  case q5_1 = 7
  case q8_0 = 8
  case q8_1 = 9
  case q2K = 10
  case q3K = 11
  case q4K = 12
  case q5K = 13
  case q6K = 14
  case q8K = 15
  case iq2XXS = 16
  case iq2XS = 17
  case iq3XXS = 18
  case iq1S = 19
  case iq4NL = 20
  case iq3S = 21
  case iq2S = 22
  case iq4XS = 23
  case i8 = 24
  case i16 = 25
  case i32 = 26
  case i64 = 27
  case f64 = 28
  case iq1M = 29
  case bf16 = 30
  case tq1_0 = 34
  case tq2_0 = 35
  case mxfp4 = 39
  case nvfp4 = 40
  case q1_0 = 41

  /// Elements per block (1 for plain types).
  public var blockSize: Int {
    switch self {
    case .f32, .f16, .bf16, .f64, .i8, .i16, .i32, .i64: 1
    case .q4_0, .q4_1, .q5_0, .q5_1, .q8_0, .q8_1, .iq4NL, .mxfp4: 32
    case .nvfp4: 64
    case .q1_0: 128
    case .q2K, .q3K, .q4K, .q5K, .q6K, .q8K, .iq2XXS, .iq2XS, .iq3XXS, .iq1S, .iq3S, .iq2S,
      .iq4XS, .iq1M, .tq1_0, .tq2_0:
      256
    }
  }

  /// Bytes one block occupies.
  public var bytesPerBlock: Int {
    switch self {
    case .f32: 4
    case .f16, .bf16: 2
    case .f64: 8
    case .i8: 1
    case .i16: 2
    case .i32: 4
    case .i64: 8
    case .q4_0: 18
    case .q4_1: 20
    case .q5_0: 22
    case .q5_1: 24
    case .q8_0: 34
    case .q8_1: 40
    case .q2K: 84
    case .q3K: 110
    case .q4K: 144
    case .q5K: 176
    case .q6K: 210
    case .q8K: 292
    case .iq2XXS: 66
    case .iq2XS: 74
    case .iq3XXS: 98
    case .iq1S: 50
    case .iq4NL: 18
    case .iq3S: 110
    case .iq2S: 82
    case .iq4XS: 136
    case .iq1M: 56
    case .tq1_0: 54
    case .tq2_0: 66
    case .mxfp4: 17
    case .nvfp4: 36
    case .q1_0: 18
    }
  }

  /// The name ggml and llama.cpp print (`Q4_K`, `IQ2_XXS`, `BF16`).
  public var name: String {
    switch self {
    case .f32: "F32"
    case .f16: "F16"
    case .q4_0: "Q4_0"
    case .q4_1: "Q4_1"
    case .q5_0: "Q5_0"
    case .q5_1: "Q5_1"
    case .q8_0: "Q8_0"
    case .q8_1: "Q8_1"
    case .q2K: "Q2_K"
    case .q3K: "Q3_K"
    case .q4K: "Q4_K"
    case .q5K: "Q5_K"
    case .q6K: "Q6_K"
    case .q8K: "Q8_K"
    case .iq2XXS: "IQ2_XXS"
    case .iq2XS: "IQ2_XS"
    case .iq3XXS: "IQ3_XXS"
    case .iq1S: "IQ1_S"
    case .iq4NL: "IQ4_NL"
    case .iq3S: "IQ3_S"
    case .iq2S: "IQ2_S"
    case .iq4XS: "IQ4_XS"
    case .i8: "I8"
    case .i16: "I16"
    case .i32: "I32"
    case .i64: "I64"
    case .f64: "F64"
    case .iq1M: "IQ1_M"
    case .bf16: "BF16"
    case .tq1_0: "TQ1_0"
    case .tq2_0: "TQ2_0"
    case .mxfp4: "MXFP4"
    case .nvfp4: "NVFP4"
    case .q1_0: "Q1_0"
    }
  }

  /// The type of that name (`Q4_K`), or `nil`.
  public init?(name: String) {
    guard let type = GGMLType.allCases.first(where: { $0.name == name }) else { return nil }
    self = type
  }

  /// The plain element type, or `nil` for block-quantized types, which have no per-element dtype.
  public var dtype: DType? {
    switch self {
    case .f32: .f32
    case .f16: .f16
    case .bf16: .bf16
    case .f64: .f64
    case .i8: .i8
    case .i16: .i16
    case .i32: .i32
    case .i64: .i64
    default: nil
    }
  }

  /// Whether several elements share a block (and so `general.quantization_version` applies).
  public var isBlockQuantized: Bool { blockSize > 1 }

  /// The ggml type that stores a plain dtype, or `nil` when GGUF has none (unsigned, FP8, bool).
  public init?(_ dtype: DType) {
    switch dtype {
    case .f32: self = .f32
    case .f16: self = .f16
    case .bf16: self = .bf16
    case .f64: self = .f64
    case .i8: self = .i8
    case .i16: self = .i16
    case .i32: self = .i32
    case .i64: self = .i64
    default: return nil
    }
  }

  /// The bytes a tensor of `shape` (row-major, last dimension contiguous) occupies, or `nil`
  /// when the row length is not a multiple of the block size or the size overflows.
  public func byteCount(shape: [Int]) -> Int? {
    let rowLength = shape.last ?? 1
    guard rowLength >= 0, rowLength % blockSize == 0 else { return nil }
    var elements = 1
    for dim in shape {
      guard dim >= 0 else { return nil }
      let (product, overflow) = elements.multipliedReportingOverflow(by: dim)
      if overflow { return nil }
      elements = product
    }
    let (bytes, overflow) = (elements / blockSize).multipliedReportingOverflow(by: bytesPerBlock)
    return overflow ? nil : bytes
  }
}
