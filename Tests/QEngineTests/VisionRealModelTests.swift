import Foundation
import QEngine
import QFormats
import Testing

/// Runs the real DINOv2 ViT and the toy VLM's image path on sample images and writes pixels and
/// outputs as raw little-endian float32 for `Tests/RealModels/check-vision.sh` to compare with
/// onnxruntime and numpy. Runs only when that script sets `QENGINE_VISION_OUT`.
@Suite("VisionRealModel", .enabled(if: ProcessInfo.processInfo.environment["QENGINE_VISION_OUT"] != nil))
struct VisionRealModelTests {
  static let environment = ProcessInfo.processInfo.environment

  static func write(_ values: [Float], to path: String) throws {
    let data = values.withUnsafeBufferPointer { Data(buffer: $0) }
    try data.write(to: URL(fileURLWithPath: path))
  }

  @Test func writesOutputs() throws {
    let out = try #require(Self.environment["QENGINE_VISION_OUT"])
    let vitFolder = try #require(Self.environment["QENGINE_VIT"])
    let vlmFolder = try #require(Self.environment["QENGINE_VLM"])
    let images = try #require(Self.environment["QENGINE_VISION_IMAGES"]).split(separator: ",").map(String.init)

    let vitConfig = try ModelConfig(
      data: Data(contentsOf: URL(fileURLWithPath: vitFolder + "/config.json")), location: vitFolder)
    let preprocess = vitConfig.raw["preprocess"]
    let size = preprocess?["size"]?.intValue ?? 224
    let preprocessor = ImagePreprocessor(
      resize: .exact(height: size, width: size), resample: .bicubic,
      mean: preprocess?["mean"]?.arrayValue?.compactMap(\.doubleValue),
      std: preprocess?["std"]?.arrayValue?.compactMap(\.doubleValue))
    let vit = try VisionEncoder(
      source: SafetensorsFile(path: vitFolder + "/model.safetensors"), config: VisionConfig(vitConfig), prefix: "")
    let vlmConfig = try ModelConfig(
      data: Data(contentsOf: URL(fileURLWithPath: vlmFolder + "/config.json")), location: vlmFolder)
    let vlm = try LLaVAVision(source: SafetensorsFile(path: vlmFolder + "/model.safetensors"), config: vlmConfig)

    for path in images {
      let name = URL(fileURLWithPath: path).deletingPathExtension().lastPathComponent
      let start = Date()
      let pixels = preprocessor(try Image.load(path: path))
      let loaded = Date()
      let output = try vit.forward(pixels: pixels)
      let encoded = Date()
      let features = try vlm.imageFeatures(pixels: pixels)
      let projected = Date()
      try Self.write(pixels.values, to: "\(out)/\(name).pixels.f32")
      try Self.write(output.lastHiddenState, to: "\(out)/\(name).vit.f32")
      try Self.write(features.values, to: "\(out)/\(name).vlm.f32")
      print(
        String(
          format: "%@: load+preprocess %.0f ms, ViT %.0f ms (%d tokens), VLM image features %.0f ms (%d x %d)",
          name, loaded.timeIntervalSince(start) * 1000, encoded.timeIntervalSince(loaded) * 1000,
          output.tokenCount, projected.timeIntervalSince(encoded) * 1000, features.count, vlm.textHiddenSize))
    }
  }
}
