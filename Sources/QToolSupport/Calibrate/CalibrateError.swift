/// Failures of calibrated quantization, each naming the tensor involved.
public enum CalibrateError: Error, CustomStringConvertible, Equatable {
  /// A calibrated quantizer failed on one tensor.
  case tensorFailed(tensor: String, reason: String)
  /// A tensor has no Gram matrix to calibrate with.
  case missingGram(tensor: String)
  /// A bits-per-weight target that no choice of candidates can meet.
  case unreachableTarget(bitsPerWeight: Double, reason: String)

  public var description: String {
    switch self {
    case .tensorFailed(let tensor, let reason): "Tensor '\(tensor)': \(reason)"
    case .missingGram(let tensor): "Tensor '\(tensor)' has no calibration Gram matrix"
    case .unreachableTarget(let bitsPerWeight, let reason):
      "Target of \(bitsPerWeight) bits per weight cannot be met: \(reason)"
    }
  }
}
