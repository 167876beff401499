import Foundation
import QFormats

/// Turns an RGB image into a model's pixel tensor the way Hugging Face image processors
/// (`CLIPImageProcessor`, `BitImageProcessor` for DINOv2, `SiglipImageProcessor`) do: resize with
/// PIL, center crop, rescale, normalise, channels first.
public struct ImagePreprocessor: Sendable, Equatable {
  public enum Resample: Sendable, Equatable {
    case bilinear, bicubic
  }

  public enum Resize: Sendable, Equatable {
    /// Keep the size.
    case none
    /// Scale so the shorter side has this length, keeping the aspect ratio (truncating the other side).
    case shortestEdge(Int)
    /// Scale to exactly this size.
    case exact(height: Int, width: Int)
  }

  public var resize: Resize
  public var resample: Resample
  /// Center crop to (height, width) after resizing; `nil` for none.
  public var crop: (height: Int, width: Int)?
  /// Multiplies the 0...255 values; `nil` leaves them as they are.
  public var rescaleFactor: Double?
  /// Per-channel mean and standard deviation; `nil` for no normalisation.
  public var mean: [Double]?
  public var std: [Double]?

  public init(
    resize: Resize, resample: Resample = .bicubic, crop: (height: Int, width: Int)? = nil,
    rescaleFactor: Double? = 1.0 / 255.0, mean: [Double]? = nil, std: [Double]? = nil
  ) {
    self.resize = resize
    self.resample = resample
    self.crop = crop
    self.rescaleFactor = rescaleFactor
    self.mean = mean
    self.std = std
  }

  public static func == (lhs: ImagePreprocessor, rhs: ImagePreprocessor) -> Bool {
    lhs.resize == rhs.resize && lhs.resample == rhs.resample && lhs.crop?.height == rhs.crop?.height
      && lhs.crop?.width == rhs.crop?.width && lhs.rescaleFactor == rhs.rescaleFactor
      && lhs.mean == rhs.mean && lhs.std == rhs.std
  }

  /// Applies the steps in Hugging Face's order.
  public func callAsFunction(_ image: RGBImage) -> PixelTensor {
    var current = image
    let filter: ImageResampler.Filter = resample == .bicubic ? .bicubic : .bilinear
    switch resize {
    case .none:
      break
    case .shortestEdge(let edge):
      let (height, width) = Self.shortestEdgeSize(height: image.height, width: image.width, edge: edge)
      current = ImageResampler.resize(current, width: width, height: height, filter: filter)
    case .exact(let height, let width):
      current = ImageResampler.resize(current, width: width, height: height, filter: filter)
    }
    var top = 0
    var left = 0
    var height = current.height
    var width = current.width
    if let crop, crop.height <= current.height, crop.width <= current.width {
      top = (current.height - crop.height) / 2
      left = (current.width - crop.width) / 2
      height = crop.height
      width = crop.width
    }
    var values = [Float](repeating: 0, count: 3 * height * width)
    for channel in 0..<3 {
      let scale = rescaleFactor ?? 1
      let channelMean = mean.map { $0[channel % $0.count] } ?? 0
      let channelStd = std.map { $0[channel % $0.count] } ?? 1
      for y in 0..<height {
        for x in 0..<width {
          let byte = current.pixels[((top + y) * current.width + left + x) * 3 + channel]
          // Hugging Face rescales in float64, then normalises in float32.
          let rescaled = Float(Double(byte) * scale)
          values[(channel * height + y) * width + x] = (rescaled - Float(channelMean)) / Float(channelStd)
        }
      }
    }
    return PixelTensor(channels: 3, height: height, width: width, values: values)
  }

  /// `get_resize_output_image_size(default_to_square=False)`.
  static func shortestEdgeSize(height: Int, width: Int, edge: Int) -> (height: Int, width: Int) {
    let short = min(height, width)
    let long = max(height, width)
    let newLong = Int(Double(edge) * Double(long) / Double(short))
    return width <= height ? (newLong, edge) : (edge, newLong)
  }
}

extension ImagePreprocessor {
  /// Reads a Hugging Face `preprocessor_config.json`.
  public init(preprocessorConfig data: Data, location: String) throws {
    let value: JSONValue
    do {
      value = try JSONDecoder().decode(JSONValue.self, from: data)
    } catch {
      throw ImageError.badPreprocessorConfig(location: location, key: "", reason: "is not valid JSON")
    }
    func int(_ key: String) -> Int? { value[key]?.intValue }
    func doubles(_ key: String) throws -> [Double]? {
      guard let entry = value[key], !entry.isNull else { return nil }
      guard let array = entry.arrayValue?.compactMap(\.doubleValue), array.count == 3 else {
        throw ImageError.badPreprocessorConfig(location: location, key: key, reason: "is not a list of 3 numbers")
      }
      return array
    }
    var resize = Resize.none
    if value["do_resize"]?.boolValue ?? true, let size = value["size"] {
      if let edge = size["shortest_edge"]?.intValue ?? size.intValue {
        resize = .shortestEdge(edge)
      } else if let height = size["height"]?.intValue, let width = size["width"]?.intValue {
        resize = .exact(height: height, width: width)
      } else {
        throw ImageError.badPreprocessorConfig(
          location: location, key: "size", reason: "has neither 'shortest_edge' nor 'height' and 'width'")
      }
    }
    // PIL's numbering: 2 bilinear, 3 bicubic.
    let resample: Resample
    switch int("resample") ?? 3 {
    case 2: resample = .bilinear
    case 3: resample = .bicubic
    case let other:
      throw ImageError.badPreprocessorConfig(
        location: location, key: "resample", reason: "is \(other); only 2 (bilinear) and 3 (bicubic) are supported")
    }
    var crop: (height: Int, width: Int)?
    if value["do_center_crop"]?.boolValue ?? false, let size = value["crop_size"] {
      if let side = size.intValue {
        crop = (side, side)
      } else if let height = size["height"]?.intValue, let width = size["width"]?.intValue {
        crop = (height, width)
      }
    }
    let rescale: Double? =
      value["do_rescale"]?.boolValue ?? true ? value["rescale_factor"]?.doubleValue ?? 1.0 / 255.0 : nil
    let normalize = value["do_normalize"]?.boolValue ?? true
    self.init(
      resize: resize, resample: resample, crop: crop, rescaleFactor: rescale,
      mean: normalize ? try doubles("image_mean") : nil, std: normalize ? try doubles("image_std") : nil)
  }
}
