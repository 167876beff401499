import Foundation
import QCompute
import QFormats
import Testing

@testable import QEngine

/// What the reference suites of the vision-language layouts (Idefics3, InternVL) share: a tiny
/// random checkpoint in `Fixtures/NAME/tiny-NAME`, the outputs transformers gave for it
/// (`expected.json`, `expected.safetensors`), and the tolerance they are compared with.
protocol VLMLayoutReference {
  /// The fixture's folder under Fixtures/: `idefics3` or `internvl`.
  static var fixtureName: String { get }
}

/// One prompt of a layout's fixture: its tokens and transformers' greedy continuation.
struct VLMLayoutCase: Decodable, Sendable, CustomTestStringConvertible {
  var name: String
  var prompt: String
  var tokens: [Int]
  var generated: [Int]
  var testDescription: String { name }
}

struct VLMLayoutExpected: Decodable {
  var image: String
  var imageToken: Int
  var imageSequenceLength: Int
  var cases: [VLMLayoutCase]

  enum CodingKeys: String, CodingKey {
    case image, cases
    case imageToken = "image_token"
    case imageSequenceLength = "image_seq_len"
  }
}

extension VLMLayoutReference {
  typealias Case = VLMLayoutCase

  static var folder: URL { LLMFixtures.root.appending(path: fixtureName) }
  static var modelFolder: URL { folder.appending(path: "tiny-" + fixtureName) }
  static var expected: VLMLayoutExpected? {
    guard let data = try? Data(contentsOf: folder.appending(path: "expected.json")) else {
      return nil
    }
    return try? JSONDecoder().decode(VLMLayoutExpected.self, from: data)
  }
  static var cases: [VLMLayoutCase] { expected?.cases ?? [] }

  static func config() throws -> ModelConfig {
    let path = modelFolder.appending(path: "config.json")
    return try ModelConfig(data: Data(contentsOf: path), location: path.path)
  }

  static func model(markers: VisionLanguageModel.ImageMarkers = .init()) throws
    -> VisionLanguageModel
  {
    try VisionLanguageModel(
      source: SafetensorsFile(path: modelFolder.appending(path: "model.safetensors").path),
      config: config(),
      imageMarkers: markers)
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

  /// `|a - b| <= 1e-4 · max(|b|, 1)` elementwise over the whole tensor.
  static func expectClose(_ ours: [Float], _ reference: [Float], _ what: String) {
    #expect(
      ours.count == reference.count, "\(what): \(ours.count) values, expected \(reference.count)")
    let largest = max(reference.map(abs).max() ?? 0, 1)
    let difference = maxDifference(ours, reference)
    #expect(difference <= 1e-4 * largest, "\(what): max difference \(difference) of \(largest)")
  }
}
