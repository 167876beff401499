/// Requests the quantizers cannot honour, each naming the quantizer and the offending setting.
public enum QuantizeError: Error, CustomStringConvertible, Equatable {
  /// The bit width is not one the quantizer or packer supports.
  case unsupportedBits(quantizer: String, bits: Int)
  /// The group size is not one the quantizer supports.
  case unsupportedGroupSize(quantizer: String, groupSize: Int)
  /// The row length is not a whole number of groups or blocks.
  case columnsNotDivisible(quantizer: String, columns: Int, by: Int)
  /// The buffer holds a different number of elements than rows x columns.
  case elementCountMismatch(quantizer: String, expected: Int, actual: Int)
  /// The number of first-level scales is not a whole number of second-level groups.
  case scaleCountNotDivisible(quantizer: String, scales: Int, by: Int)
  /// Encoded GGUF data whose length is not a whole number of blocks.
  case truncatedBlocks(type: String, bytes: Int, blockBytes: Int)
  /// A ggml block type no decoder here reads (the IQ grids, ternary and FP4 types).
  case unsupportedBlockType(type: String)
  /// A ggml block type whose encoder here takes no importance matrix.
  case unsupportedImportance(type: String)

  public var description: String {
    switch self {
    case .unsupportedBits(let quantizer, let bits):
      "\(quantizer): \(bits)-bit codes are not supported"
    case .unsupportedGroupSize(let quantizer, let groupSize):
      "\(quantizer): group size \(groupSize) is not supported"
    case .columnsNotDivisible(let quantizer, let columns, let by):
      "\(quantizer): row length \(columns) is not a multiple of \(by)"
    case .elementCountMismatch(let quantizer, let expected, let actual):
      "\(quantizer): expected \(expected) elements, got \(actual)"
    case .scaleCountNotDivisible(let quantizer, let scales, let by):
      "\(quantizer): \(scales) group scales do not split into second-level groups of \(by)"
    case .truncatedBlocks(let type, let bytes, let blockBytes):
      "\(type): \(bytes) bytes is not a whole number of \(blockBytes)-byte blocks"
    case .unsupportedBlockType(let type):
      "\(type) blocks cannot be dequantized (supported: Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K to Q6_K, IQ4_NL)"
    case .unsupportedImportance(let type):
      "\(type) blocks are not encoded with an importance matrix here (only Q4_0, Q4_1, Q5_0 and Q5_1 are)"
    }
  }
}
