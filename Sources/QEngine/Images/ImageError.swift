/// Failures to read or prepare an image, each naming the file or tensor involved.
public enum ImageError: Error, CustomStringConvertible, Equatable {
  /// The file could not be read at all.
  case unreadable(path: String, reason: String)
  /// The file is neither PNG nor JPEG.
  case unknownFormat(path: String)
  /// The decoder rejected the file.
  case decodeFailed(path: String, format: String, reason: String)
  /// The image is larger than the engine accepts.
  case tooLarge(path: String, width: Int, height: Int)
  /// A pixel tensor has a shape other than [3, H, W] or [1, 3, H, W].
  case badPixelTensor(location: String, tensor: String, shape: [Int])
  /// A preprocessor setting is missing or out of range.
  case badPreprocessorConfig(location: String, key: String, reason: String)

  public var description: String {
    switch self {
    case .unreadable(let path, let reason):
      "\(path): cannot read the image: \(reason)"
    case .unknownFormat(let path):
      "\(path): not a PNG or JPEG file"
    case .decodeFailed(let path, let format, let reason):
      "\(path): \(format) decoding failed: \(reason)"
    case .tooLarge(let path, let width, let height):
      "\(path): image of \(width)x\(height) pixels is too large"
    case .badPixelTensor(let location, let tensor, let shape):
      "\(location): tensor '\(tensor)' has shape \(shape), expected [3, H, W] or [1, 3, H, W]"
    case .badPreprocessorConfig(let location, let key, let reason):
      "\(location): preprocessor setting '\(key)' \(reason)"
    }
  }
}
