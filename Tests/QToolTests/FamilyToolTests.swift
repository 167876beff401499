import Foundation
import Testing

/// The tools run each family's tiny checkpoint (Fixtures/families, with the byte-level
/// tokenizer beside it): perplexity before and after a 4-bit GPTQ conversion and a short
/// 2-bit SPEED-Q run.
@Suite struct FamilyToolTests {
  static let root = fixturesDirectory.appendingPathComponent("families")
  static let sample = fixturesDirectory.appendingPathComponent("tiny-chat.sample.txt").path

  /// Every checkpoint folder of Fixtures/families.
  static let families: [String] = {
    let names = (try? FileManager.default.contentsOfDirectory(atPath: root.path)) ?? []
    return names.filter { FileManager.default.fileExists(atPath: root.appendingPathComponent("\($0)/config.json").path) }
      .sorted()
  }()

  @Test func everyFamilyFixtureIsFound() {
    #expect(Self.families == ["gemma", "gemma2", "gemma3", "gemma3_text", "llama3", "mistral", "phi3", "qwen2", "qwen3", "smollm3"])
  }

  /// A scratch folder holding the family's checkpoint and the byte-level tokenizer.
  func checkpoint(_ family: String) throws -> (scratch: URL, folder: URL) {
    let manager = FileManager.default
    let scratch = manager.temporaryDirectory.appendingPathComponent("family-\(family)-\(UUID().uuidString)")
    let folder = scratch.appendingPathComponent("model")
    try manager.createDirectory(at: folder, withIntermediateDirectories: true)
    for file in ["config.json", "model.safetensors"] {
      try manager.copyItem(
        at: Self.root.appendingPathComponent(family).appendingPathComponent(file),
        to: folder.appendingPathComponent(file))
    }
    try manager.copyItem(
      at: Self.root.appendingPathComponent("byte-tokenizer.json"), to: folder.appendingPathComponent("tokenizer.json"))
    return (scratch, folder)
  }

  /// The number after `perplexity ` in qinspect's report.
  func perplexity(_ folder: String) throws -> Double {
    let run = try runTool("qinspect", [folder, "--perplexity", Self.sample, "--context", "32", "--windows", "2"])
    #expect(run.status == 0, "\(run.stderr)")
    let line = try #require(run.stdout.split(separator: "\n").last { $0.hasPrefix("perplexity ") })
    return try #require(Double(line.split(separator: " ")[1]))
  }

  @Test(arguments: families)
  func gptqConvertsAndPerplexityRuns(_ family: String) throws {
    let (scratch, folder) = try checkpoint(family)
    defer { try? FileManager.default.removeItem(at: scratch) }
    let original = try perplexity(folder.path)
    #expect(original.isFinite && original > 1)
    let output = scratch.appendingPathComponent("gptq").path
    let convert = try runTool(
      "qconvert",
      [
        folder.path, "-o", output, "--method", "gptq", "--bits", "4", "--group-size", "16", "--calib", Self.sample,
        "--calib-context", "32", "--calib-windows", "2",
      ])
    #expect(convert.status == 0, "\(convert.stderr)")
    #expect((convert.stdout + convert.stderr).contains("mlp.down_proj.weight: 4-bit g16 affine gptq"))
    if family == "phi3" {
      // The fused weights are quantized whole, under the names and shapes the checkpoint has.
      #expect((convert.stdout + convert.stderr).contains("self_attn.qkv_proj.weight: 4-bit g16 affine gptq"))
      #expect((convert.stdout + convert.stderr).contains("mlp.gate_up_proj.weight: 4-bit g16 affine gptq"))
    }
    let quantized = try perplexity(output)
    #expect(quantized.isFinite && quantized > 1)
    #expect(quantized != original)
  }

  /// Phi-3 converts with RTN (its fused weights are quantized whole) and the pack runs: the fused
  /// weights are dequantized when split at load.
  @Test func phi3ConvertsWithRTNAndRuns() throws {
    let (scratch, folder) = try checkpoint("phi3")
    defer { try? FileManager.default.removeItem(at: scratch) }
    let original = try perplexity(folder.path)
    #expect(original.isFinite && original > 1)
    let output = scratch.appendingPathComponent("rtn").path
    let convert = try runTool(
      "qconvert", [folder.path, "-o", output, "--method", "rtn", "--bits", "4", "--group-size", "16"])
    #expect(convert.status == 0, "\(convert.stderr)")
    #expect((convert.stdout + convert.stderr).contains("self_attn.qkv_proj.weight: 4-bit g16 affine rtn"))
    let quantized = try perplexity(output)
    #expect(quantized.isFinite && quantized > 1)
    #expect(quantized != original)
  }

  /// `--sensitivity` reports Phi-3's fused weights as the four matrices per block the checkpoint
  /// stores, and `--target-bpw` allocates a grid to each, which GPTQ then follows.
  @Test func phi3SensitivityAndBitAllocationSeeTheFusedWeights() throws {
    let (scratch, folder) = try checkpoint("phi3")
    defer { try? FileManager.default.removeItem(at: scratch) }
    let calib = ["--group-size", "16", "--calib", Self.sample, "--calib-context", "32", "--calib-windows", "2"]
    let report = try runTool(
      "qconvert", [folder.path, "-o", "/nonexistent/unused", "--sensitivity", "--format", "json", "--quiet"] + calib)
    #expect(report.status == 0, "\(report.stderr)")
    struct Report: Decodable {
      struct Row: Decodable { var tensor: String }
      var rows: [Row]
    }
    let rows = try JSONDecoder().decode(Report.self, from: Data(report.stdout.utf8)).rows.map(\.tensor)
    let modules = ["self_attn.qkv_proj", "self_attn.o_proj", "mlp.gate_up_proj", "mlp.down_proj"]
    #expect(rows == (0..<2).flatMap { block in modules.map { "model.layers.\(block).\($0).weight" } })
    let output = scratch.appendingPathComponent("allocated").path
    let convert = try runTool(
      "qconvert", [folder.path, "-o", output, "--method", "gptq", "--target-bpw", "5"] + calib)
    #expect(convert.status == 0, "\(convert.stderr)")
    #expect((convert.stdout + convert.stderr).contains("self_attn.qkv_proj.weight: "), "\(convert.stderr)")
    let quantized = try perplexity(output)
    #expect(quantized.isFinite && quantized > 1)
  }

  /// Block-wise AdaRound learns the rounding of Phi-3's fused weights as the matrices the
  /// checkpoint stores, and the pack runs.
  @Test func phi3AdaRoundsFusedWeights() throws {
    let (scratch, folder) = try checkpoint("phi3")
    defer { try? FileManager.default.removeItem(at: scratch) }
    let output = scratch.appendingPathComponent("adaround").path
    let convert = try runTool(
      "qconvert",
      [
        folder.path, "-o", output, "--method", "adaround", "--bits", "4", "--group-size", "16", "--calib", Self.sample,
        "--calib-context", "32", "--calib-windows", "2", "--adaround-iterations", "4",
      ])
    #expect(convert.status == 0, "\(convert.stderr)")
    for name in ["self_attn.qkv_proj", "mlp.gate_up_proj", "mlp.down_proj"] {
      #expect((convert.stdout + convert.stderr).contains("\(name).weight: 4-bit g16 affine adaround"), "\(convert.stderr)")
    }
    let quantized = try perplexity(output)
    #expect(quantized.isFinite && quantized > 1)
  }

  /// Three SPEED-Q steps train Phi-3's fused weights through their split; the pack holds them
  /// fused and runs.
  @Test func phi3SpeedQTrainsFusedWeights() throws {
    let (scratch, folder) = try checkpoint("phi3")
    defer { try? FileManager.default.removeItem(at: scratch) }
    let output = scratch.appendingPathComponent("speedq").path
    let convert = try runTool(
      "qconvert",
      [
        folder.path, "-o", output, "--method", "speedq", "--bits", "2", "--group-size", "16", "--calib", Self.sample,
        "--calib-context", "32", "--calib-windows", "2", "--qat-steps", "3",
      ])
    #expect(convert.status == 0, "\(convert.stderr)")
    for name in ["self_attn.qkv_proj", "mlp.gate_up_proj", "mlp.down_proj"] {
      #expect((convert.stdout + convert.stderr).contains("\(name).weight: 2-bit g16 bilevel speedq"), "\(convert.stderr)")
    }
    let quantized = try perplexity(output)
    #expect(quantized.isFinite && quantized > 1)
  }

  @Test(arguments: families.filter { $0 != "phi3" })
  func aShortSpeedQRunConverts(_ family: String) throws {
    let (scratch, folder) = try checkpoint(family)
    defer { try? FileManager.default.removeItem(at: scratch) }
    let output = scratch.appendingPathComponent("speedq").path
    let convert = try runTool(
      "qconvert",
      [
        folder.path, "-o", output, "--method", "speedq", "--bits", "2", "--group-size", "16", "--calib", Self.sample,
        "--calib-context", "32", "--calib-windows", "2", "--qat-steps", "2",
      ])
    #expect(convert.status == 0, "\(convert.stderr)")
    #expect((convert.stdout + convert.stderr).contains("mlp.down_proj.weight: 2-bit g16 bilevel speedq"))
    let quantized = try perplexity(output)
    #expect(quantized.isFinite && quantized > 1)
  }
}
