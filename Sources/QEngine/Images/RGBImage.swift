/// An 8-bit RGB image, rows top to bottom, pixels interleaved (HWC), as PIL's `RGB` mode holds it.
public struct RGBImage: Sendable, Equatable {
  public var width: Int
  public var height: Int
  /// `height * width * 3` bytes.
  public var pixels: [UInt8]

  public init(width: Int, height: Int, pixels: [UInt8]) {
    precondition(pixels.count == width * height * 3, "RGB buffer of \(pixels.count) bytes for \(width)x\(height)")
    self.width = width
    self.height = height
    self.pixels = pixels
  }
}

/// Reading images from files and memory.
public enum Image {
  /// Largest image accepted, in pixels; guards the allocation against headers that lie.
  public static let maximumPixelCount = 1 << 28
}
