import Foundation
import QCompute
import QFormats

/// Writes a checkpoint in which quantized tensors are replaced by their dequantized values, so
/// any reader (`DecoderModel`, numpy) can evaluate the quantized model as dense weights.
public enum SpeedQDequantized {
  /// Every tensor of `base` as F32, those named in `quantized` dequantized and those named in
  /// `replacing` (trained full-precision tensors) with the given values, to `path` (atomic).
  /// - Throws: what reading `base` or writing the file throws; `SpeedQError.quantization` for a
  ///   quantized or replaced tensor whose size differs from the base tensor.
  public static func write(
    _ quantized: [String: QuantizedMatrix], replacing: [String: [Float]] = [:], over base: any TensorSource,
    to path: String
  ) throws {
    let plan = base.tensors.map { TensorInfo(name: $0.name, dtype: .f32, shape: $0.shape) }
    let writer = try SafetensorsWriter(path: path, plan: plan)
    for info in writer.order {
      var values: [Float]
      if let matrix = quantized[info.name] {
        values = matrix.dequantize()
        guard values.count == info.elementCount else {
          throw SpeedQError.quantization(
            tensor: info.name, reason: "has \(values.count) quantized values for \(info.elementCount) elements")
        }
      } else if let replacement = replacing[info.name] {
        values = replacement
        guard values.count == info.elementCount else {
          throw SpeedQError.quantization(
            tensor: info.name, reason: "has \(values.count) trained values for \(info.elementCount) elements")
        }
      } else {
        values = try base.floats(of: info.name)
      }
      try values.withUnsafeBytes { try writer.append(name: info.name, bytes: $0) }
    }
    try writer.finish()
  }
}
