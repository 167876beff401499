import CPNG
import Foundation

extension Image {
  /// Decodes PNG through libpng's simplified API, which catches libpng's errors itself (the
  /// classic API needs `setjmp`, which Swift cannot call).
  ///
  /// Any colour type and depth comes out as 8-bit RGB; an alpha channel is dropped, as PIL's
  /// `convert("RGB")` does, rather than composited.
  static func decodePNG(_ data: Data, location: String) throws(ImageError) -> RGBImage {
    // libpng reads from the buffer until the last call, so everything happens inside.
    let result: Result<RGBImage, ImageError> = data.withUnsafeBytes { raw in
      var image = png_image()
      image.version = UInt32(PNG_IMAGE_VERSION)
      guard png_image_begin_read_from_memory(&image, raw.baseAddress, raw.count) != 0 else {
        return .failure(.decodeFailed(path: location, format: "PNG", reason: message(of: image)))
      }
      let width = Int(image.width)
      let height = Int(image.height)
      guard width > 0, height > 0, width * height <= maximumPixelCount else {
        png_image_free(&image)
        return .failure(.tooLarge(path: location, width: width, height: height))
      }
      let hasAlpha = image.format & PNG_FORMAT_FLAG_ALPHA != 0
      let channels = hasAlpha ? 4 : 3
      image.format = hasAlpha ? PNG_FORMAT_RGB | PNG_FORMAT_FLAG_ALPHA : PNG_FORMAT_RGB
      var decoded = [UInt8](repeating: 0, count: width * height * channels)
      let finished = decoded.withUnsafeMutableBytes { buffer in
        png_image_finish_read(&image, nil, buffer.baseAddress, 0, nil)
      }
      guard finished != 0 else {
        return .failure(.decodeFailed(path: location, format: "PNG", reason: message(of: image)))
      }
      guard hasAlpha else { return .success(RGBImage(width: width, height: height, pixels: decoded)) }
      var rgb = [UInt8](repeating: 0, count: width * height * 3)
      for pixel in 0..<(width * height) {
        rgb[pixel * 3] = decoded[pixel * 4]
        rgb[pixel * 3 + 1] = decoded[pixel * 4 + 1]
        rgb[pixel * 3 + 2] = decoded[pixel * 4 + 2]
      }
      return .success(RGBImage(width: width, height: height, pixels: rgb))
    }
    return try result.get()
  }

  private static func message(of image: png_image) -> String {
    var text = image.message
    return withUnsafeBytes(of: &text) { raw in
      String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
    }
  }
}
