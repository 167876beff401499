import QFormats

/// What can go wrong reading or writing a qpack, each naming the file and the tensor.
public enum PackError: Error, CustomStringConvertible, Equatable {
  /// The file's `qpack.version` is not one this reader knows.
  case unsupportedVersion(location: String, version: String)
  /// A `qpack.tensor.<N>` entry that is not valid JSON or lacks a field.
  case invalidDescription(location: String, tensor: String, reason: String)
  /// A companion tensor named by a description is absent or has the wrong dtype or shape.
  case badCompanion(location: String, tensor: String, reason: String)
  /// The weight cannot be packed with the requested spec.
  case cannotPack(location: String, tensor: String, reason: String)
  /// A weight holds NaN or infinity; `index` is the first offending element's coordinates.
  case nonFinite(location: String, tensor: String, index: [Int], value: Float)
  /// A `.qweight` zstd frame that cannot be made or read back.
  case compression(location: String, tensor: String, reason: String)
  /// The stored bytes of a tensor do not match the checksum its description records.
  case checksumMismatch(location: String, tensor: String, expected: String, actual: String)
  /// The packed tensor would dequantize to a value its dtype cannot hold (infinity or NaN) with
  /// scales and offsets stored in `scaleDType`; `index` is the first such element's coordinates
  /// in the flattened `[O, I]` matrix.
  case dequantizesNonFinite(location: String, tensor: String, scaleDType: DType, index: [Int], value: Float)

  public var description: String {
    switch self {
    case .unsupportedVersion(let location, let version):
      "\(location): qpack version '\(version)' is not supported (this reader knows version 1)"
    case .invalidDescription(let location, let tensor, let reason):
      "\(location): description of tensor '\(tensor)' \(reason)"
    case .badCompanion(let location, let tensor, let reason):
      "\(location): tensor '\(tensor)' \(reason)"
    case .cannotPack(let location, let tensor, let reason):
      "\(location): tensor '\(tensor)' cannot be packed: \(reason)"
    case .nonFinite(let location, let tensor, let index, let value):
      "\(location): tensor '\(tensor)' holds \(value) at index \(index)"
    case .compression(let location, let tensor, let reason):
      "\(location): tensor '\(tensor)': \(reason)"
    case .checksumMismatch(let location, let tensor, let expected, let actual):
      "\(location): tensor '\(tensor)' has checksum \(actual), but its description records \(expected)"
    case .dequantizesNonFinite(let location, let tensor, let scaleDType, let index, let value):
      "\(location): tensor '\(tensor)' cannot be packed: with \(scaleDType.rawValue) scales it dequantizes to \(value) at index \(index)"
    }
  }
}
