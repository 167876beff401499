import Foundation
import QCompute
import QFormats
import Testing

@testable import QEngine

/// InternVL's layout against transformers' `InternVLForConditionalGeneration` on the tiny random
/// checkpoint of Fixtures/make_internvl_fixtures.py: InternViT with layer scale, pixel shuffle,
/// the projector (layer norm, linear, GELU, linear), the Qwen2 under `language_model.`, and the
/// processor's expansion of `<IMG_CONTEXT>`.
@Suite struct InternVLReferenceTests: VLMLayoutReference {
  static let fixtureName = "internvl"

  @Test func fixturesArePresent() {
    #expect(Self.cases.count == 2)
  }

  @Test func towerAndConnectorMatchTransformers() throws {
    let model = try Self.model()
    let vision = try #require(model.vision as? InternVLVision)
    let pixels = try Self.referencePixels()
    let tower = try vision.encoder.forward(pixels: pixels)
    Self.expectClose(
      tower.lastHiddenState, try Self.reference().floats(of: "vision"), "last_hidden_state")
    let features = try model.imageFeatures(pixels: pixels)
    let expected = try #require(Self.expected)
    #expect(features.rows == expected.imageSequenceLength)
    Self.expectClose(
      features.elements, try Self.reference().floats(of: "features"), "projector output")
  }

  @Test(arguments: cases)
  func logitsMatchTransformers(_ testCase: Case) throws {
    let model = try Self.model()
    let logits = try model.logits(tokens: testCase.tokens, pixels: Self.referencePixels())
    let vocabulary = model.decoder.configuration.vocabularySize
    #expect(logits.rows == testCase.tokens.count)
    let values = logits.elements
    var head: [Float] = []
    for row in 0..<logits.rows { head += values[(row * vocabulary)..<(row * vocabulary + 64)] }
    let reference = try Self.reference()
    Self.expectClose(
      head, try reference.floats(of: "\(testCase.name).logits_head"), "\(testCase.name) logits head"
    )
    Self.expectClose(
      Array(values.suffix(vocabulary)), try reference.floats(of: "\(testCase.name).logits_last"),
      "\(testCase.name) last logits")
  }

  @Test(arguments: cases)
  func greedyTokensMatchTransformers(_ testCase: Case) throws {
    let generated = try Self.model().generate(
      tokens: testCase.tokens, pixels: Self.referencePixels(), maxTokens: testCase.generated.count)
    #expect(generated == testCase.generated)
  }

  /// A prompt with one `<IMG_CONTEXT>` expands as the processor expands it: `<img>` and
  /// `</img>` around `image_seq_length` image rows, giving the logits of the expanded prompt.
  @Test func loneImageTokenExpandsAsTheProcessorDoes() throws {
    let testCase = try #require(Self.cases.first { $0.name == "image-inside" })
    let tokenizer = try Tokenizer(folder: Self.modelFolder)
    let markers = VisionLanguageModel.markers(for: try Self.config(), tokenID: tokenizer.id(of:))
    let start = try #require(tokenizer.id(of: "<img>"))
    let end = try #require(tokenizer.id(of: "</img>"))
    #expect(markers == .init(before: [start], after: [end]))
    let image = try #require(Self.expected?.imageToken)
    let prompt = tokenizer.encode(testCase.prompt, addSpecialTokens: false)
    #expect(prompt.count(where: { $0 == image }) == 1)
    let model = try Self.model(markers: markers)
    let pixels = try Self.referencePixels()
    #expect(
      try model.logits(tokens: prompt, pixels: pixels)
        == model.logits(tokens: testCase.tokens, pixels: pixels))
    // LLaVA's layout has no markers.
    let llava = try VisionLanguageModel.markers(
      for: ModelConfig(data: Data(#"{"model_type": "llava"}"#.utf8), location: "llava"),
      tokenID: tokenizer.id(of:))
    #expect(llava == .init())
  }

  /// transformers' in-memory names (`model.vision_tower.`, `model.multi_modal_projector.`,
  /// `model.language_model.` and a top-level `lm_head`) give the same model as the saved ones.
  @Test func inMemoryNamesRunTheSameModel() throws {
    let original = try SafetensorsFile(
      path: Self.modelFolder.appending(path: "model.safetensors").path)
    func renamed(_ name: String) -> String {
      if name == "language_model.lm_head.weight" { return "lm_head.weight" }
      if name.hasPrefix("language_model.model.") {
        return "model.language_model." + name.dropFirst(21)
      }
      return "model." + name
    }
    let path = FileManager.default.temporaryDirectory.appending(
      path: "internvl-\(UUID().uuidString).safetensors"
    ).path
    defer { try? FileManager.default.removeItem(atPath: path) }
    let plan = original.tensors.map {
      TensorInfo(name: renamed($0.name), dtype: .f32, shape: $0.shape)
    }
    let writer = try SafetensorsWriter(path: path, plan: plan, metadata: [:])
    let byNewName = Dictionary(
      uniqueKeysWithValues: original.tensors.map { (renamed($0.name), $0.name) })
    for info in writer.order {
      let values = try original.floats(of: try #require(byNewName[info.name]))
      try values.withUnsafeBytes { try writer.append(name: info.name, bytes: $0) }
    }
    try writer.finish()
    let model = try VisionLanguageModel(source: SafetensorsFile(path: path), config: Self.config())
    #expect((model.vision as? InternVLVision)?.towerPrefix == "model.vision_tower.")
    let testCase = try #require(Self.cases.first)
    let pixels = try Self.referencePixels()
    let reference = try Self.model().logits(tokens: testCase.tokens, pixels: pixels).elements
    Self.expectClose(
      try model.logits(tokens: testCase.tokens, pixels: pixels).elements, reference, "renamed")
  }
}
