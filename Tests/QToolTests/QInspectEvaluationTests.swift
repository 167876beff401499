import Foundation
import Testing

/// `qinspect --perplexity` and `--generate` against the numpy reference's numbers for the
/// tiny-chat fixture (see Fixtures/make_tiny_models.py).
@Suite struct QInspectEvaluationTests {
  struct Expected: Decodable {
    var context: Int
    var windows: Int
    var scored_tokens: Int
    var perplexity: Double
    var completion: String
  }

  struct Report: Decodable {
    struct Perplexity: Decodable {
      var perplexity: Double
      var scored_tokens: Int
      var windows: Int
      var context: Int
    }
    struct Generation: Decodable {
      var completion: String
      var tokens: Int
      var seconds: Double
      var prompt_tokens: Int?
      var prompt_seconds: Double?
    }
    var perplexity: Perplexity?
    var generation: Generation?
  }

  func expected() throws -> Expected {
    let data = try Data(contentsOf: fixturesDirectory.appendingPathComponent("tiny-chat.expected.json"))
    return try JSONDecoder().decode(Expected.self, from: data)
  }

  @Test func perplexityAndGenerationMatchTheNumpyReference() throws {
    let reference = try expected()
    let run = try runTool(
      "qinspect",
      [
        fixturesDirectory.appendingPathComponent("tiny-chat").path, "--format", "json",
        "--perplexity", fixturesDirectory.appendingPathComponent("tiny-chat.sample.txt").path,
        "--context", "\(reference.context)", "--windows", "\(reference.windows)",
        "--generate", "The quick brown fox", "--max-tokens", "8",
      ])
    #expect(run.status == 0, "\(run.stderr)")
    let report = try #require(try JSONDecoder().decode([Report].self, from: Data(run.stdout.utf8)).first)
    let perplexity = try #require(report.perplexity)
    #expect(perplexity.scored_tokens == reference.scored_tokens)
    #expect(perplexity.windows == reference.windows)
    #expect(abs(perplexity.perplexity - reference.perplexity) <= 1e-4 * reference.perplexity)
    let generation = try #require(report.generation)
    #expect(generation.tokens == 8)
    #expect(generation.completion == reference.completion)
    // The prompt's share of the time: "The quick brown fox" through tiny-chat's chat template.
    let promptTokens = try #require(generation.prompt_tokens)
    let promptSeconds = try #require(generation.prompt_seconds)
    #expect(promptTokens > 4)
    #expect(promptSeconds > 0 && promptSeconds <= generation.seconds)
  }

  @Test func packedModelRunsFromItsCodes() throws {
    let reference = try expected()
    let work = FileManager.default.temporaryDirectory
      .appendingPathComponent("qinspect-eval-\(UUID().uuidString)")
    defer { try? FileManager.default.removeItem(at: work) }
    let pack = work.appendingPathComponent("pack").path
    let convert = try runTool(
      "qconvert",
      [fixturesDirectory.appendingPathComponent("tiny-chat").path, "-o", pack, "--bits", "8", "--group-size", "32", "--quiet"])
    #expect(convert.status == 0, "\(convert.stderr)")
    let run = try runTool(
      "qinspect",
      [
        pack, "--format", "json", "--perplexity",
        fixturesDirectory.appendingPathComponent("tiny-chat.sample.txt").path,
        "--context", "\(reference.context)", "--windows", "\(reference.windows)",
      ])
    #expect(run.status == 0, "\(run.stderr)")
    let report = try #require(try JSONDecoder().decode([Report].self, from: Data(run.stdout.utf8)).first)
    let perplexity = try #require(report.perplexity)
    // 8-bit codes of a random model: close to, but not exactly, the float model.
    #expect(abs(perplexity.perplexity - reference.perplexity) <= 0.02 * reference.perplexity)
  }

  @Test func aModelWithoutTokenizerIsAOneLineError() throws {
    let run = try runTool(
      "qinspect",
      [fixturesDirectory.appendingPathComponent("tiny-llama").path, "--generate", "hello"])
    #expect(run.status == 1)
    #expect(run.stderr.contains("no tokenizer.json"))
    #expect(run.stderr.split(separator: "\n").count == 1)
  }

  @Test func headerOnlyCannotRunTheModel() throws {
    let run = try runTool(
      "qinspect",
      [fixturesDirectory.appendingPathComponent("tiny-chat").path, "--header-only", "--generate", "x"])
    #expect(run.status == 64)
  }
}
