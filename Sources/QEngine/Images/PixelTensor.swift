import QFormats

/// A preprocessed image as a vision encoder takes it: channels first, `[channels, height, width]`.
public struct PixelTensor: Sendable, Equatable {
  public var channels: Int
  public var height: Int
  public var width: Int
  /// `channels * height * width` values, channel planes one after the other.
  public var values: [Float]

  public init(channels: Int, height: Int, width: Int, values: [Float]) {
    precondition(values.count == channels * height * width, "pixel tensor of \(values.count) values")
    self.channels = channels
    self.height = height
    self.width = width
    self.values = values
  }

  /// Reads pre-processed pixels stored as a `[3, H, W]` or `[1, 3, H, W]` tensor of any float dtype.
  public static func load(from source: any TensorSource, tensor name: String) throws -> PixelTensor {
    guard let info = source.info(named: name) else {
      throw EngineError.missingTensor(location: source.location, tensor: name)
    }
    var shape = info.shape
    if shape.count == 4, shape[0] == 1 { shape.removeFirst() }
    guard shape.count == 3, shape.allSatisfy({ $0 > 0 }) else {
      throw ImageError.badPixelTensor(location: source.location, tensor: name, shape: info.shape)
    }
    return PixelTensor(
      channels: shape[0], height: shape[1], width: shape[2], values: try source.floats(of: name))
  }
}
