import Foundation
import QEngine
import QFormats
import Testing

@Suite("Vision encoders")
struct VisionEncoderTests {
  static func encoder(_ folder: String, prefix: String) throws -> VisionEncoder {
    let data = try Data(contentsOf: URL(fileURLWithPath: VisionFixtures.path("vision/\(folder)/config.json")))
    let config = try VisionConfig(ModelConfig(data: data, location: folder))
    return try VisionEncoder(
      source: VisionFixtures.open("vision/\(folder)/model.safetensors"), config: config, prefix: prefix)
  }

  /// Compares every hidden state and the last hidden state with the float64 numpy forward pass.
  @Test(arguments: [
    ("tiny-dinov2", "", "dinov2"), ("tiny-dinov2", "", "dinov2.interpolated"), ("tiny-clip", "vision_model.", "clip"),
  ])
  func matchesNumpy(folder: String, prefix: String, key: String) throws {
    let encoder = try Self.encoder(folder, prefix: prefix)
    let expected = try VisionFixtures.open("vision/expected.safetensors")
    let pixels = try PixelTensor.load(from: expected, tensor: key + ".pixels")
    let output = try encoder.forward(pixels: pixels)
    let hiddenShape = try #require(expected.info(named: key + ".hidden")).shape
    #expect(hiddenShape == [Int]([output.hiddenStates.count, output.tokenCount, output.hiddenSize]))
    let hidden = try expected.floats(of: key + ".hidden")
    let stride = output.tokenCount * output.hiddenSize
    for (layer, state) in output.hiddenStates.enumerated() {
      let reference = Array(hidden[(layer * stride)..<((layer + 1) * stride)])
      #expect(VisionFixtures.maxAbsDifference(state, reference) < 1e-4, "\(key) hidden state \(layer)")
    }
    let last = try expected.floats(of: key + ".last")
    #expect(VisionFixtures.maxAbsDifference(output.lastHiddenState, last) < 1e-4)
  }

  @Test func clipRejectsAnotherImageSize() throws {
    let encoder = try Self.encoder("tiny-clip", prefix: "vision_model.")
    let pixels = PixelTensor(channels: 3, height: 20, width: 16, values: .init(repeating: 0, count: 3 * 20 * 16))
    #expect(throws: EngineError.self) { try encoder.forward(pixels: pixels) }
  }

  @Test func missingTensorIsNamed() throws {
    let data = try Data(contentsOf: URL(fileURLWithPath: VisionFixtures.path("vision/tiny-clip/config.json")))
    let config = try VisionConfig(ModelConfig(data: data, location: "tiny-clip"))
    let source = try VisionFixtures.open("vision/tiny-clip/model.safetensors")
    #expect(throws: EngineError.missingTensor(location: source.location, tensor: "vm.embeddings.patch_embedding.weight")) {
      try VisionEncoder(source: source, config: config, prefix: "vm.")
    }
  }
}

@Suite("LLaVA vision")
struct LLaVAVisionTests {
  static func model() throws -> LLaVAVision {
    let data = try Data(contentsOf: URL(fileURLWithPath: VisionFixtures.path("tiny-llava/config.json")))
    let config = try ModelConfig(data: data, location: "tiny-llava")
    return try LLaVAVision(source: VisionFixtures.open("tiny-llava/model.safetensors"), config: config)
  }

  @Test func imageFeaturesMatchNumpy() throws {
    let llava = try Self.model()
    let expected = try VisionFixtures.open("vision/tiny-llava-expected.safetensors")
    let features = try llava.imageFeatures(pixels: PixelTensor.load(from: expected, tensor: "pixels"))
    #expect(expected.info(named: "features")?.shape == [Int]([features.count, llava.textHiddenSize]))
    #expect(VisionFixtures.maxAbsDifference(features.values, try expected.floats(of: "features")) < 1e-4)
  }

  @Test func spliceReplacesImageTokenRows() throws {
    let llava = try Self.model()
    let width = llava.textHiddenSize
    let tokens = [1, 255, 255, 7]
    var embeddings = (0..<(tokens.count * width)).map { Float($0) }
    let original = embeddings
    let features = (0..<(2 * width)).map { -Float($0) - 1 }
    try llava.splice(embeddings: &embeddings, tokens: tokens, features: features)
    #expect(Array(embeddings[0..<width]) == Array(original[0..<width]))
    #expect(Array(embeddings[width..<(3 * width)]) == features)
    #expect(Array(embeddings[(3 * width)...]) == Array(original[(3 * width)...]))
    #expect(throws: EngineError.self) {
      try llava.splice(embeddings: &embeddings, tokens: tokens, features: Array(features.prefix(width)))
    }
  }
}
