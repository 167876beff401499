import Foundation
import QCompute
import QFormats
import Testing

@testable import QEngine

/// Idefics3 (SmolVLM's layout) against transformers' `Idefics3ForConditionalGeneration` on the
/// tiny random checkpoint of Fixtures/make_idefics3_fixtures.py: tower, pixel shuffle and
/// connector, the Llama under `model.text_model.` with its top-level `lm_head`, and the
/// processor's expansion of `<image>`.
@Suite struct Idefics3ReferenceTests: VLMLayoutReference {
  static let fixtureName = "idefics3"

  @Test func fixturesArePresent() {
    #expect(Self.cases.count == 2)
  }

  @Test func towerAndConnectorMatchTransformers() throws {
    let model = try Self.model()
    let vision = try #require(model.vision as? Idefics3Vision)
    let pixels = try Self.referencePixels()
    let tower = try vision.towerFeatures(pixels: pixels)
    Self.expectClose(
      tower.lastHiddenState, try Self.reference().floats(of: "vision"), "last_hidden_state")
    let features = try model.imageFeatures(pixels: pixels)
    let expected = try #require(Self.expected)
    #expect(features.rows == expected.imageSequenceLength)
    Self.expectClose(
      features.elements, try Self.reference().floats(of: "features"), "connector output")
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

  /// A prompt with one `<image>` expands as the processor expands it: the tokenizer's markers
  /// around `image_seq_len` image rows, giving the logits of the expanded prompt.
  @Test func loneImageTokenExpandsAsTheProcessorDoes() throws {
    let testCase = try #require(Self.cases.first { $0.name == "image-inside" })
    let tokenizer = try Tokenizer(folder: Self.modelFolder)
    let markers = VisionLanguageModel.markers(for: try Self.config(), tokenID: tokenizer.id(of:))
    let fake = try #require(tokenizer.id(of: "<fake_token_around_image>"))
    let global = try #require(tokenizer.id(of: "<global-img>"))
    #expect(markers == .init(before: [fake, global], after: [fake]))
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

  /// A scale factor that does not divide the patch grid, or a checkpoint without the connector,
  /// is refused with one line naming what is wrong.
  @Test func misfitConfigOrWeightsAreRefused() throws {
    let path = Self.modelFolder.appending(path: "config.json")
    var json = try #require(
      try JSONSerialization.jsonObject(with: Data(contentsOf: path)) as? [String: Any])
    json["scale_factor"] = 3
    let config = try ModelConfig(
      data: try JSONSerialization.data(withJSONObject: json), location: path.path)
    let source = try SafetensorsFile(
      path: Self.modelFolder.appending(path: "model.safetensors").path)
    do {
      _ = try VisionLanguageModel(source: source, config: config)
      Issue.record("scale_factor 3 on a 4-patch grid was accepted")
    } catch {
      let message = "\(error)"
      #expect(
        message.contains("scale_factor") && message.contains(path.path) && !message.contains("\n"),
        "\(message)")
    }
    // InternVL's weights under Idefics3's config: the first tower tensor is missing.
    let other = try SafetensorsFile(
      path: LLMFixtures.root.appending(path: "internvl/tiny-internvl/model.safetensors").path)
    #expect(
      throws: EngineError.missingTensor(
        location: other.location, tensor: "model.vision_model.embeddings.patch_embedding.weight")
    ) {
      try VisionLanguageModel(source: other, config: Self.config())
    }
  }

  /// Pixel shuffle against the index formula of transformers' view/permute sequence, on a grid
  /// of 6×6 patches (scale 2 and 3) and the 1×1 edge.
  @Test(arguments: [(6, 2), (6, 3), (1, 1), (4, 4)])
  func pixelShuffleGathersNeighbourhoods(_ shape: (side: Int, scale: Int)) throws {
    let (side, scale) = shape
    let depth = 3
    let x = (0..<(side * side * depth)).map(Float.init)
    let out = try Idefics3Vision.pixelShuffle(
      x, height: side, width: side, depth: depth, scale: scale)
    let coarse = side / scale
    for i in 0..<coarse {
      for j in 0..<coarse {
        for a in 0..<scale {
          for b in 0..<scale {
            for c in 0..<depth {
              let value = out[((i * coarse + j) * scale * scale + a * scale + b) * depth + c]
              #expect(value == x[((i * scale + a) * side + j * scale + b) * depth + c])
            }
          }
        }
      }
    }
    #expect(throws: EngineError.self) {
      try Idefics3Vision.pixelShuffle(x, height: side, width: side, depth: depth, scale: 5)
    }
  }
}
