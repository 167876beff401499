import Foundation
import Testing

/// `qinspect --generate PROMPT --image FILE` on the tiny vision-language fixture, against the
/// numpy reference of Fixtures/make_vlm_fixtures.py.
@Suite struct QInspectVLMTests {
  struct Expected: Decodable {
    struct Case: Decodable {
      var name: String
      var prompt: String
      var completion: String
      var generated: [Int]
    }
    var image: String
    var cases: [Case]
  }

  struct Report: Decodable {
    struct Generation: Decodable {
      var prompt: String
      var image: String?
      var completion: String
      var tokens: Int
    }
    var generation: Generation?
  }

  static let model = fixturesDirectory.appendingPathComponent("vlm/tiny-llava-chat").path

  func expected() throws -> Expected {
    let data = try Data(contentsOf: fixturesDirectory.appendingPathComponent("vlm/expected.json"))
    return try JSONDecoder().decode(Expected.self, from: data)
  }

  /// The config has no image token, so a leading `<image>` placeholder is dropped and the image
  /// goes before the prompt: the reference's "prepended" case.
  @Test(arguments: ["", "<image>\n"])
  func imagePromptMatchesTheReference(placeholder: String) throws {
    let reference = try expected()
    let testCase = try #require(reference.cases.first { $0.name == "prepended" })
    let image = fixturesDirectory.appendingPathComponent(reference.image).path
    let run = try runTool(
      "qinspect",
      [
        Self.model, "--format", "json", "--generate", placeholder + testCase.prompt, "--image", image,
        "--max-tokens", "\(testCase.generated.count)",
      ])
    #expect(run.status == 0, "\(run.stderr)")
    let report = try #require(try JSONDecoder().decode([Report].self, from: Data(run.stdout.utf8)).first)
    let generation = try #require(report.generation)
    #expect(generation.image == image)
    #expect(generation.prompt == placeholder + testCase.prompt)
    #expect(generation.tokens == testCase.generated.count)
    #expect(generation.completion == testCase.completion)
  }

  @Test func imageWithoutGenerateIsAUsageError() throws {
    let run = try runTool("qinspect", [Self.model, "--image", "x.png"])
    #expect(run.status == 64)
    #expect(run.stderr.contains("'--image' is given with '--generate'"))
  }

  @Test func imageOnATextModelIsAOneLineError() throws {
    let chat = fixturesDirectory.appendingPathComponent("tiny-chat").path
    let image = fixturesDirectory.appendingPathComponent("images/rgb.png").path
    let run = try runTool("qinspect", [chat, "--generate", "Hi", "--image", image])
    #expect(run.status == 1)
    #expect(run.stderr == "qinspect: \(chat): not a vision-language model (no 'vision_config'); '--image' needs one\n")
  }

  @Test func anUnreadableImageIsAOneLineError() throws {
    let run = try runTool("qinspect", [Self.model, "--generate", "Hi", "--image", "/nonexistent/picture.png"])
    #expect(run.status == 1)
    #expect(run.stderr.hasPrefix("qinspect: /nonexistent/picture.png"))
    #expect(run.stderr.filter { $0 == "\n" }.count == 1)
  }
}
