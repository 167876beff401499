import Foundation
import QFormats

extension Image {
  /// Decodes a PNG or JPEG file to RGB, recognising the format by its signature, not its name.
  public static func load(path: String) throws(ImageError) -> RGBImage {
    let data: Data
    do {
      data = try SideFile.read(path, limit: 1 << 30)
    } catch {
      throw .unreadable(path: path, reason: "\(error)")
    }
    return try decode(data, location: path)
  }

  /// Decodes PNG or JPEG bytes; `location` names them in errors.
  public static func decode(_ data: Data, location: String) throws(ImageError) -> RGBImage {
    let bytes = [UInt8](data.prefix(8))
    if bytes.starts(with: [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]) {
      return try decodePNG(data, location: location)
    }
    if bytes.starts(with: [0xFF, 0xD8, 0xFF]) {
      return try decodeJPEG(data, location: location)
    }
    throw .unknownFormat(path: location)
  }
}
