import Foundation
import QEngine
import Testing

@Suite("Image loading")
struct ImageLoadingTests {
  @Test(arguments: ["rgb.png", "alpha.png", "colour.jpg", "grey.jpg"])
  func decodesLikePIL(file: String) throws {
    let image = try Image.load(path: VisionFixtures.path("images/\(file)"))
    let expected = try VisionFixtures.open("images/expected.safetensors")
    let key = String(file.prefix { $0 != "." }) + ".rgb"
    let info = try #require(expected.info(named: key))
    #expect([image.height, image.width, 3] == info.shape)
    let reference = try expected.floats(of: key)
    let decoded = image.pixels.map(Float.init)
    #expect(VisionFixtures.maxAbsDifference(decoded, reference) == 0)
  }

  @Test func truncatedJPEGIsAnErrorNamingTheFile() {
    let path = VisionFixtures.path("images/truncated.jpg")
    #expect(throws: ImageError.decodeFailed(path: path, format: "JPEG", reason: "premature end of data")) {
      try Image.load(path: path)
    }
  }

  @Test func fatalJPEGErrorIsThrownNotExited() throws {
    let path = VisionFixtures.path("images/garbled.jpg")
    let error = try #require(throws: ImageError.self) { try Image.load(path: path) }
    guard case .decodeFailed(let location, "JPEG", let reason) = error else {
      Issue.record("unexpected error \(error)")
      return
    }
    #expect(location == path)
    #expect(!reason.isEmpty)
    // The decoder still works after a failure.
    _ = try Image.load(path: VisionFixtures.path("images/colour.jpg"))
  }

  @Test func unknownAndMissingFiles() throws {
    let path = VisionFixtures.path("tiny-llava/config.json")
    #expect(throws: ImageError.unknownFormat(path: path)) { try Image.load(path: path) }
    let missing = VisionFixtures.path("images/absent.png")
    #expect(throws: ImageError.self) { try Image.load(path: missing) }
    let corruptPNG = Data([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A, 0, 0, 0, 13, 1, 2])
    let error = try #require(throws: ImageError.self) { try Image.decode(corruptPNG, location: "x.png") }
    #expect(error.description.hasPrefix("x.png: PNG decoding failed"))
  }
}

@Suite("Image preprocessing")
struct ImagePreprocessingTests {
  static let clip = ImagePreprocessor(
    resize: .shortestEdge(24), resample: .bicubic, crop: (20, 20),
    mean: [0.48145466, 0.4578275, 0.40821073], std: [0.26862954, 0.26130258, 0.27577711])
  static let dino = ImagePreprocessor(
    resize: .shortestEdge(18), resample: .bilinear, crop: (16, 16),
    mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225])

  @Test(arguments: ["rgb.png", "alpha.png", "colour.jpg", "grey.jpg"])
  func matchesHuggingFaceProcessors(file: String) throws {
    let image = try Image.load(path: VisionFixtures.path("images/\(file)"))
    let expected = try VisionFixtures.open("images/expected.safetensors")
    let stem = String(file.prefix { $0 != "." })
    for (recipe, preprocessor) in [("clip", Self.clip), ("dino", Self.dino)] {
      let key = "\(stem).\(recipe)"
      let pixels = preprocessor(image)
      #expect([pixels.channels, pixels.height, pixels.width] == expected.info(named: key)?.shape)
      let reference = try expected.floats(of: key)
      #expect(VisionFixtures.maxAbsDifference(pixels.values, reference) < 1e-5, "\(key)")
    }
  }

  @Test func readsPreprocessorConfig() throws {
    let json = """
      {"do_resize": true, "size": {"shortest_edge": 24}, "resample": 3, "do_center_crop": true,
       "crop_size": {"height": 20, "width": 20}, "do_rescale": true, "rescale_factor": 0.00392156862745098,
       "do_normalize": true, "image_mean": [0.48145466, 0.4578275, 0.40821073],
       "image_std": [0.26862954, 0.26130258, 0.27577711]}
      """
    let preprocessor = try ImagePreprocessor(preprocessorConfig: Data(json.utf8), location: "p.json")
    #expect(preprocessor.resize == .shortestEdge(24))
    #expect(preprocessor.resample == .bicubic)
    #expect(preprocessor.crop?.height == 20 && preprocessor.crop?.width == 20)
    #expect(preprocessor.mean == Self.clip.mean)
    let bad = Data(#"{"size": {"shortest_edge": 24}, "resample": 0}"#.utf8)
    #expect(throws: ImageError.self) { try ImagePreprocessor(preprocessorConfig: bad, location: "p.json") }
  }

  @Test func readsPixelTensors() throws {
    let source = try VisionFixtures.open("vision/expected.safetensors")
    let pixels = try PixelTensor.load(from: source, tensor: "dinov2.interpolated.pixels")
    #expect([pixels.channels, pixels.height, pixels.width] == [Int]([3, 20, 24]))
    #expect(throws: ImageError.self) { try PixelTensor.load(from: source, tensor: "dinov2.last") }
  }
}
