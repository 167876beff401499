#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

/// Everything that can go wrong reading or writing safetensors files and shard sets.
///
/// Every case names the file it concerns (`location`) and, where there is one, the tensor or
/// key; `description` is one line in the tone of argument-parser's messages.
public enum SafetensorsError: Error, CustomStringConvertible, Equatable, Sendable {
  // Reading: the file as a whole.
  case emptyFile(location: String)
  case fileTooSmall(location: String, size: Int)
  /// The file is some other format; `format` says which and what to do.
  case foreignFormat(location: String, format: String)
  case headerTooLarge(location: String, length: UInt64)
  case headerPastEnd(location: String, length: UInt64, fileSize: Int)
  case headerNotUTF8(location: String)
  case invalidJSON(location: String, offset: Int, reason: String)
  case headerNotObject(location: String)
  case duplicateKey(location: String, key: String)
  case reservedTensorName(location: String)
  case invalidMetadata(location: String, key: String, reason: String)
  // Reading: one tensor's entry.
  case invalidEntry(location: String, tensor: String, reason: String)
  case unknownDType(location: String, tensor: String, dtype: String)
  case shapeOverflow(location: String, tensor: String, shape: [Int])
  case invalidOffsets(location: String, tensor: String, begin: Int, end: Int, reason: String)
  case sizeMismatch(location: String, tensor: String, dtype: DType, shape: [Int], expected: Int, actual: Int)
  case truncated(location: String, expectedSize: Int, actualSize: Int)
  case trailingBytes(location: String, count: Int)
  /// A stream (stdin, a pipe, a device) goes on past the size its header declares.
  case streamTooLong(location: String, expectedSize: Int)
  /// A stream's header declares more data than the scratch folder it is spooled to can hold.
  case streamTooLarge(location: String, dataLength: Int, available: Int, folder: String)
  case tensorNotFound(location: String, tensor: String)
  // Writing.
  case invalidPlan(location: String, reason: String)
  case unexpectedTensor(location: String, tensor: String, expected: String?)
  case wrongByteCount(location: String, tensor: String, expected: Int, actual: Int)
  case unfinished(location: String, missing: [String])
  // Shard sets.
  case invalidIndex(location: String, reason: String)
  case missingShard(location: String, shard: String)
  case shardContentsDiffer(location: String, shard: String, reason: String)
  // The operating system.
  case system(location: String, operation: String, errno: Int32)
  /// The output path was refused, or appeared meanwhile, when the file was put in place.
  case output(OutputError)

  public var description: String {
    switch self {
    case .emptyFile(let location):
      "\(location): file is empty (0 bytes)"
    case .fileTooSmall(let location, let size):
      "\(location): file is \(size) bytes, too small for a safetensors header (at least 8)"
    case .foreignFormat(let location, let format):
      "\(location): \(format)"
    case .headerTooLarge(let location, let length):
      "\(location): header length \(length) exceeds the 100000000-byte limit"
    case .headerPastEnd(let location, let length, let fileSize):
      "\(location): header length \(length) runs past the end of the file (\(fileSize) bytes); the file may be truncated"
    case .headerNotUTF8(let location):
      "\(location): header is not valid UTF-8"
    case .invalidJSON(let location, let offset, let reason):
      "\(location): header is not valid JSON at byte \(offset) of the header: \(reason)"
    case .headerNotObject(let location):
      "\(location): header is JSON but not an object of tensors"
    case .duplicateKey(let location, let key):
      "\(location): header names '\(key)' more than once"
    case .reservedTensorName(let location):
      "\(location): a tensor is named '__metadata__', which is reserved for metadata"
    case .invalidMetadata(let location, let key, let reason):
      key.isEmpty
        ? "\(location): '__metadata__' \(reason)"
        : "\(location): metadata '\(key)' \(reason)"
    case .invalidEntry(let location, let tensor, let reason):
      "\(location): tensor '\(tensor)' \(reason)"
    case .unknownDType(let location, let tensor, let dtype):
      "\(location): tensor '\(tensor)' has unknown dtype '\(dtype)'"
    case .shapeOverflow(let location, let tensor, let shape):
      "\(location): tensor '\(tensor)' has shape \(shape) whose size overflows"
    case .invalidOffsets(let location, let tensor, let begin, let end, let reason):
      "\(location): tensor '\(tensor)' has data_offsets [\(begin), \(end)]: \(reason)"
    case .sizeMismatch(let location, let tensor, let dtype, let shape, let expected, let actual):
      "\(location): tensor '\(tensor)' occupies \(actual) bytes but \(dtype.rawValue) \(shape) needs \(expected)"
    case .truncated(let location, let expectedSize, let actualSize):
      "\(location): file is truncated: the header describes \(expectedSize) bytes but the file has \(actualSize) (incomplete download?)"
    case .trailingBytes(let location, let count):
      "\(location): \(count) trailing bytes after the last tensor"
    case .streamTooLong(let location, let expectedSize):
      "\(location): the stream goes on past the \(expectedSize) bytes its header describes (not a safetensors stream?)"
    case .streamTooLarge(let location, let dataLength, let available, let folder):
      "\(location): the header describes \(dataLength) bytes of tensor data, more than the \(available) bytes free in \(folder) to hold the stream"
    case .tensorNotFound(let location, let tensor):
      "\(location): no tensor named '\(tensor)'"
    case .invalidPlan(let location, let reason):
      "\(location): \(reason)"
    case .unexpectedTensor(let location, let tensor, let expected):
      if let expected {
        "\(location): got tensor '\(tensor)' but the plan expects '\(expected)' next"
      } else {
        "\(location): got tensor '\(tensor)' after every planned tensor was written"
      }
    case .wrongByteCount(let location, let tensor, let expected, let actual):
      "\(location): tensor '\(tensor)' was given \(actual) bytes but its dtype and shape need \(expected)"
    case .unfinished(let location, let missing):
      "\(location): \(missing.count) planned tensors were never written, first '\(missing.first ?? "")'"
    case .invalidIndex(let location, let reason):
      "\(location): \(reason)"
    case .missingShard(let location, let shard):
      "\(location): shard '\(shard)' named in the weight map does not exist"
    case .shardContentsDiffer(let location, let shard, let reason):
      "\(location): shard '\(shard)' \(reason)"
    case .system(let location, let operation, let errno):
      "\(location): \(operation) failed: \(_systemMessage(errno))"
    case .output(let error):
      error.description
    }
  }
}

/// The C library's text for `errno`.
func _systemMessage(_ code: Int32) -> String {
  guard let text = strerror(code) else { return "error \(code)" }
  return String(cString: text)
}
