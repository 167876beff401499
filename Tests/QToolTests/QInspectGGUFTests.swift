import Foundation
import Testing

/// `qinspect --perplexity`, `--generate` and `qdiff --data` on a GGUF file: tiny-chat written
/// by Fixtures/make_gguf_engine_fixtures.py (Q4_1 embedding, Q8_0 matrices, its tokenizer in
/// the metadata), against the numpy reference run on gguf-py's dequantization.
@Suite struct QInspectGGUFTests {
  let gguf = fixturesDirectory.appendingPathComponent("gguf-engine/tiny-chat.gguf").path
  let sample = fixturesDirectory.appendingPathComponent("tiny-chat.sample.txt").path

  struct Expected: Decodable {
    struct Half: Decodable {
      var windows: Int
      var scored_tokens: Int
      var perplexity: Double
    }
    var context: Int
    var windows: Int
    var scored_tokens: Int
    var perplexity: Double
    var second_half: Half
  }

  struct Report: Decodable {
    struct Perplexity: Decodable {
      var perplexity: Double
      var scored_tokens: Int
      var windows: Int
      var scoring: String
    }
    var perplexity: Perplexity?
  }

  func expected() throws -> Expected {
    let data = try Data(contentsOf: fixturesDirectory.appendingPathComponent("gguf-engine/tiny-chat.expected.json"))
    return try JSONDecoder().decode(Expected.self, from: data)
  }

  func perplexity(_ extra: [String]) throws -> (Report.Perplexity, String) {
    let run = try runTool("qinspect", [gguf, "--format", "json", "--perplexity", sample] + extra)
    #expect(run.status == 0, "\(run.stderr)")
    let report = try #require(try JSONDecoder().decode([Report].self, from: Data(run.stdout.utf8)).first)
    return (try #require(report.perplexity), run.stderr)
  }

  @Test func perplexityMatchesTheNumpyReference() throws {
    let reference = try expected()
    let (result, _) = try perplexity(
      ["--context", "\(reference.context)", "--windows", "\(reference.windows)", "--progress", "none"])
    #expect(result.scored_tokens == reference.scored_tokens)
    #expect(result.scoring == "all")
    #expect(abs(result.perplexity - reference.perplexity) <= 1e-4 * reference.perplexity)
  }

  @Test func secondHalfScoringMatchesTheNumpyReference() throws {
    let reference = try expected().second_half
    let (result, stderr) = try perplexity(["--context", "32", "--scoring", "second-half", "--progress", "json"])
    #expect(result.windows == reference.windows)
    #expect(result.scored_tokens == reference.scored_tokens)
    #expect(result.scoring == "second-half")
    #expect(abs(result.perplexity - reference.perplexity) <= 1e-4 * reference.perplexity)
    // One JSON progress line per window, the last one complete.
    let lines = stderr.split(separator: "\n").map(String.init)
    #expect(lines.count == reference.windows)
    let last = try #require(
      try JSONSerialization.jsonObject(with: Data((lines.last ?? "").utf8)) as? [String: Any])
    #expect(last["stage"] as? String == "perplexity")
    #expect(last["done"] as? Int == reference.windows)
    #expect(last["total"] as? Int == reference.windows)
    #expect(last["unit"] as? String == "windows")
  }

  /// The table format prints the result, not the tensor table before it.
  @Test func tableShowsOnlyTheResult() throws {
    let run = try runTool(
      "qinspect", [gguf, "--generate", "The quick brown fox", "--max-tokens", "4", "--perplexity", sample,
        "--context", "32", "--windows", "2", "--progress", "lines"])
    #expect(run.status == 0, "\(run.stderr)")
    let lines = run.stdout.split(separator: "\n", omittingEmptySubsequences: false)
    #expect(lines.first.map(String.init) == gguf)
    #expect(run.stdout.contains("perplexity "))
    #expect(run.stdout.contains("completion: "))
    #expect(!run.stdout.contains("token_embd"))
    #expect(!run.stdout.contains("tensors"))
    // A line per window on stderr when it is not a terminal.
    #expect(run.stderr.contains("qinspect: perplexity 1/2 windows"))
    #expect(run.stderr.contains("qinspect: perplexity 2/2 windows"))
  }

  @Test func qdiffDataComparesTheFileWithItsSource() throws {
    let folder = fixturesDirectory.appendingPathComponent("tiny-chat").path
    let run = try runTool("qdiff", [folder, gguf, "--data", sample, "--context", "32", "--windows", "2", "--format", "json"])
    #expect(run.status == 1 || run.status == 0, "\(run.stderr)")
    let object = try #require(try JSONSerialization.jsonObject(with: Data(run.stdout.utf8)) as? [String: Any])
    let data = try #require(object["data"] as? [String: Any])
    // Same vocabulary, read from the metadata on one side and tokenizer.json on the other.
    #expect(data["tokenization"] as? String == "shared")
    // Q8_0 and Q4_1 noise on a random model: distributions close, not equal.
    let meanKL = try #require(data["mean_kl"] as? Double)
    #expect(meanKL > 0 && meanKL < 0.01)
    // The weights line up under Hugging Face names: q and k rows back in their order (a row
    // permutation left in place would give a cosine near 0), Q8_0 error about 0.5%.
    let tensors = try #require(object["tensors"] as? [[String: Any]])
    #expect(tensors.count == 20)
    for name in ["model.layers.0.self_attn.q_proj.weight", "model.layers.1.self_attn.k_proj.weight"] {
      let tensor = try #require(tensors.first { $0["name"] as? String == name })
      #expect((tensor["cosine"] as? Double ?? 0) > 0.9999, "\(name)")
    }
  }

  @Test func unsupportedArchitectureIsOneLine() throws {
    let work = FileManager.default.temporaryDirectory.appendingPathComponent("qinspect-gguf-\(UUID().uuidString).gguf")
    defer { try? FileManager.default.removeItem(at: work) }
    var bytes = try Data(contentsOf: URL(fileURLWithPath: gguf))
    // Rename the architecture in place: "llama" -> "lamma" keeps every length and offset.
    let key = Data("general.architecture".utf8)
    let at = try #require(bytes.range(of: key))
    let value = try #require(bytes.range(of: Data("llama".utf8), in: at.upperBound..<bytes.count))
    bytes.replaceSubrange(value, with: Data("lamma".utf8))
    try bytes.write(to: work)
    let run = try runTool("qinspect", [work.path, "--generate", "hi"])
    #expect(run.status == 1)
    #expect(run.stderr == "qinspect: \(work.path): GGUF architecture 'lamma' is not supported (the engine runs 'llama' and 'qwen2')\n")
  }
}
