/// Why a quantized input (a GGUF's blocks, an MLX-quantized folder) cannot be read as floats;
/// each message names the file or folder, the tensor and what was expected.
public enum DequantizeError: Error, CustomStringConvertible, Equatable {
  /// A GGUF tensor of a block type no decoder here reads.
  case unsupportedBlockType(location: String, tensor: String, type: String)
  /// A GGUF tensor whose blocks cannot be decoded.
  case badBlocks(location: String, tensor: String, reason: String)
  /// An MLX-quantized tensor whose companions or shapes contradict the config.
  case badMLXTensor(location: String, tensor: String, reason: String)
  /// An MLX `quantization` block that is unusable or contradicts the tensors.
  case badMLXConfig(location: String, reason: String)

  public var description: String {
    switch self {
    case .unsupportedBlockType(let location, let tensor, let type):
      "\(location): tensor '\(tensor)' is \(type), which cannot be dequantized (supported: Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K to Q6_K, IQ4_NL)"
    case .badBlocks(let location, let tensor, let reason):
      "\(location): tensor '\(tensor)' \(reason)"
    case .badMLXTensor(let location, let tensor, let reason):
      "\(location): MLX-quantized tensor '\(tensor)' \(reason)"
    case .badMLXConfig(let location, let reason):
      "\(location): MLX quantization \(reason)"
    }
  }
}
