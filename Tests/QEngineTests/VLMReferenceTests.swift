import Foundation
import QCompute
import QFormats
import Testing

@testable import QEngine

/// The vision-language model against the float64 numpy reference of Fixtures/make_vlm_fixtures.py.
@Suite struct VLMReferenceTests {
  struct Case: Decodable, Sendable, CustomTestStringConvertible {
    var name: String
    var prompt: String
    var tokens: [Int]
    var imageStart: Int
    var positions: Int
    var generated: [Int]
    var completion: String
    var testDescription: String { name }

    enum CodingKeys: String, CodingKey {
      case name, prompt, tokens, positions, generated, completion
      case imageStart = "image_start"
    }
  }

  struct Expected: Decodable {
    var image: String
    var imageToken: Int
    var featureRows: Int
    var cases: [Case]

    enum CodingKeys: String, CodingKey {
      case image, cases
      case imageToken = "image_token"
      case featureRows = "feature_rows"
    }
  }

  static let folder = LLMFixtures.root.appending(path: "vlm")
  static let expected: Expected? = {
    guard let data = try? Data(contentsOf: folder.appending(path: "expected.json")) else { return nil }
    return try? JSONDecoder().decode(Expected.self, from: data)
  }()
  static var cases: [Case] { expected?.cases ?? [] }

  /// The "prepended" case runs on config.json (no image token), the others on the config that
  /// names one.
  static func model(for testCase: Case) throws -> VisionLanguageModel {
    let configName = testCase.name == "prepended" ? "config.json" : "config-image-token.json"
    let model = folder.appending(path: "tiny-llava-chat")
    let config = try ModelConfig(
      data: Data(contentsOf: model.appending(path: configName)), location: model.appending(path: configName).path)
    return try VisionLanguageModel(
      source: SafetensorsFile(path: model.appending(path: "model.safetensors").path), config: config)
  }

  static func reference() throws -> SafetensorsFile {
    try SafetensorsFile(path: folder.appending(path: "expected.safetensors").path)
  }

  static func referencePixels() throws -> PixelTensor {
    try PixelTensor.load(from: reference(), tensor: "pixels")
  }

  static func maxDifference(_ a: some Sequence<Float>, _ b: some Sequence<Float>) -> Float {
    zip(a, b).reduce(0) { max($0, abs($1.0 - $1.1)) }
  }

  @Test func fixturesArePresent() {
    #expect(Self.cases.count == 2)
  }

  @Test(arguments: cases)
  func logitsMatchTheReference(_ testCase: Case) throws {
    let model = try Self.model(for: testCase)
    let logits = try model.logits(tokens: testCase.tokens, pixels: Self.referencePixels())
    let vocabulary = model.decoder.configuration.vocabularySize
    #expect(logits.rows == testCase.positions)
    #expect(logits.columns == vocabulary)
    let reference = try Self.reference()
    let head = try reference.floats(of: "\(testCase.name).logits_head")
    let last = try reference.floats(of: "\(testCase.name).logits_last")
    let values = logits.elements
    var ours: [Float] = []
    for row in 0..<logits.rows { ours += values[(row * vocabulary)..<(row * vocabulary + 64)] }
    let largest = max(head.map(abs).max() ?? 0, last.map(abs).max() ?? 0, 1)
    #expect(head.count == ours.count)
    #expect(Self.maxDifference(ours, head) <= 1e-4 * largest)
    #expect(Self.maxDifference(values.suffix(vocabulary), last) <= 1e-4 * largest)
  }

  @Test(arguments: cases)
  func greedyTokensMatchTheReference(_ testCase: Case) throws {
    let model = try Self.model(for: testCase)
    let generated = try model.generate(
      tokens: testCase.tokens, pixels: Self.referencePixels(), maxTokens: testCase.generated.count)
    #expect(generated == testCase.generated)
  }

  /// The image file through `Image.load` and the fallback preprocessor gives the reference's pixels
  /// (PIL's bicubic resize), features and tokens.
  @Test func imageFileRunsEndToEnd() throws {
    let expected = try #require(Self.expected)
    let testCase = try #require(Self.cases.first { $0.name == "prepended" })
    let model = try Self.model(for: testCase)
    let image = try Image.load(path: LLMFixtures.root.appending(path: expected.image).path)
    let pixels = model.preprocessor(image)
    let reference = try Self.referencePixels()
    #expect(pixels.height == reference.height && pixels.width == reference.width)
    #expect(Self.maxDifference(pixels.values, reference.values) <= 1e-5)
    let features = try model.imageFeatures(of: image)
    let expectedFeatures = try Self.reference().floats(of: "features")
    #expect(features.rows == expected.featureRows)
    let largest = max(expectedFeatures.map(abs).max() ?? 0, 1)
    #expect(Self.maxDifference(features.elements, expectedFeatures) <= 1e-4 * largest)
    let generated = try model.generate(tokens: testCase.tokens, pixels: pixels, maxTokens: testCase.generated.count)
    #expect(generated == testCase.generated)
  }

  @Test func layoutExpandsKeepsOrPrependsImageRows() throws {
    let testCase = try #require(Self.cases.first { $0.name == "image-token" })
    let model = try Self.model(for: testCase)
    let image = try #require(model.imageTokenIndex)
    let rows = (0..<3).map(VisionLanguageModel.Position.image)
    #expect(try model.layout(tokens: [7, image, 8], featureRows: 3) == [.token(7)] + rows + [.token(8)])
    #expect(try model.layout(tokens: [image, 7, image, image], featureRows: 3) == [.image(0), .token(7), .image(1), .image(2)])
    #expect(try model.layout(tokens: [7, 8], featureRows: 3) == rows + [.token(7), .token(8)])
    #expect(throws: VisionLanguageError.imageTokenCount(location: model.location, token: image, found: 2, featureRows: 3)) {
      try model.layout(tokens: [image, image], featureRows: 3)
    }
  }

  /// Embeddings of plain tokens through `logits(embeddings:)` give what `logits(tokens:)` gives.
  @Test func embeddingEntryPointMatchesTokens() throws {
    let testCase = try #require(Self.cases.first)
    let decoder = try Self.model(for: testCase).decoder
    let tokens = [52, 2599, 762, 85]
    let byTokens = try decoder.logits(tokens: tokens)
    let embeddings = try decoder.embed(tokens: tokens)
    #expect(embeddings.rows == 4 && embeddings.columns == decoder.configuration.hiddenSize)
    #expect(try decoder.logits(embeddings: embeddings) == byTokens)
    let states = try decoder.hiddenStates(embeddings: embeddings)
    #expect(states == (try decoder.hiddenStates(tokens: tokens)))
    #expect(states.first == embeddings)
    #expect(throws: DecoderError.self) { try decoder.logits(embeddings: Matrix(rows: 2, columns: 3)) }
  }
}
