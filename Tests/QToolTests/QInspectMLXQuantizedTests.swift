import Foundation
import Testing

/// `qinspect --perplexity` and `--generate` on an MLX-quantized folder: tiny-chat converted by
/// mlx_lm.convert at 4 bits, groups of 32 (Fixtures/make_mlx_engine_fixtures.py), against mlx_lm
/// running the same folder.
@Suite struct QInspectMLXQuantizedTests {
  struct Expected: Decodable {
    var context: Int
    var windows: Int
    var scored_tokens: Int
    var perplexity: Double
  }

  struct Report: Decodable {
    struct Perplexity: Decodable {
      var perplexity: Double
      var scored_tokens: Int
    }
    var perplexity: Perplexity?
  }

  @Test func perplexityMatchesMLX() throws {
    let data = try Data(contentsOf: fixturesDirectory.appendingPathComponent("mlx-engine/tiny-chat-q4.expected.json"))
    let expected = try JSONDecoder().decode(Expected.self, from: data)
    let run = try runTool(
      "qinspect",
      [
        fixturesDirectory.appendingPathComponent("mlx-engine/tiny-chat-q4").path, "--format", "json",
        "--perplexity", fixturesDirectory.appendingPathComponent("tiny-chat.sample.txt").path,
        "--context", "\(expected.context)", "--windows", "\(expected.windows)", "--progress", "none",
      ])
    #expect(run.status == 0, "\(run.stderr)")
    let report = try #require(try JSONDecoder().decode([Report].self, from: Data(run.stdout.utf8)).first)
    let perplexity = try #require(report.perplexity)
    #expect(perplexity.scored_tokens == expected.scored_tokens)
    // mlx_lm runs the F16 model in F16 (rounding of 5e-4 relative per step), we in F32 on the
    // same dequantized weights: the mean NLL (about 8 nats) agrees to within 2e-3 nats. A
    // misread layer (wrong bits, group or scale) moves it by far more.
    #expect(abs(log(perplexity.perplexity) - log(expected.perplexity)) <= 2e-3, "\(perplexity.perplexity)")
  }

  struct Listing: Decodable {
    struct Tensor: Decodable {
      var name: String
      var shape: [Int]
      var parameters: Int
      var bytes: Int
      var bits: Int?
      var group_size: Int?
      var bits_per_weight: Double?
    }
    var tensors: [Tensor]
  }

  /// The tensor table lists each packed weight once, at its real shape, with its bits, group and
  /// the bytes of its words, scales and biases: 4-bit codes and F16 scale and bias per 32 values
  /// are 5 bits per weight.
  @Test func packedWeightsAreListedAtTheirRealShape() throws {
    let folder = fixturesDirectory.appendingPathComponent("mlx-engine/tiny-chat-q4").path
    let run = try runTool("qinspect", [folder, "--format", "json"])
    #expect(run.status == 0, "\(run.stderr)")
    let listing = try #require(try JSONDecoder().decode([Listing].self, from: Data(run.stdout.utf8)).first)
    #expect(!listing.tensors.contains { $0.name.hasSuffix(".scales") || $0.name.hasSuffix(".biases") })
    let q = try #require(listing.tensors.first { $0.name == "model.layers.0.self_attn.q_proj.weight" })
    #expect(q.shape == [64, 64] && q.parameters == 64 * 64)
    #expect(q.bits == 4 && q.group_size == 32)
    #expect(q.bytes == 64 * 64 / 2 + 2 * 2 * 64 * 64 / 32)
    #expect(q.bits_per_weight == 5)
    let norm = try #require(listing.tensors.first { $0.name == "model.norm.weight" })
    #expect(norm.bits == nil)
  }
}
