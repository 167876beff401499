import Foundation
import QCompute
import QFormats
import Testing

@testable import QToolSupport

@Suite struct QConvertRuleTests {
  @Test(arguments: [
    ("mlp=keep", RuleAction.keep),
    ("attn=4", RuleAction.quantize(bits: 4, group: nil, grid: nil, method: nil)),
    ("x=2g16", RuleAction.quantize(bits: 2, group: .elements(16), grid: nil, method: nil)),
    ("x=4g32:sym", RuleAction.quantize(bits: 4, group: .elements(32), grid: .symmetric, method: nil)),
    ("x=3g0:hqq", RuleAction.quantize(bits: 3, group: .perChannel, grid: nil, method: .hqq)),
    ("x=bilevel2", RuleAction.bilevel(bits: 2)),
    // MLX's widths parse; the native layout refuses them (ExportLayoutTests).
    ("x=5g32", RuleAction.quantize(bits: 5, group: .elements(32), grid: nil, method: nil)),
    ("x=6", RuleAction.quantize(bits: 6, group: nil, grid: nil, method: nil)),
  ])
  func parses(text: String, action: RuleAction) throws {
    #expect(try ConvertRule(parsing: text).action == action)
  }

  @Test(arguments: ["noequals", "=4", "x=7", "x=1", "x=4g24", "x=4:sym:affine", "x=4:sym:hqq", "x=bilevel3", "x=4:fast", "(=4"])
  func rejects(text: String) {
    #expect(throws: ConvertError.self) { try ConvertRule(parsing: text) }
  }
}

@Suite struct QConvertToolTests {
  func scratch() -> URL {
    FileManager.default.temporaryDirectory.appendingPathComponent("qconvert-\(UUID().uuidString)")
  }

  @Test(arguments: ["tiny-llama", "tiny-llava"])
  func convertsInspectsAndRestores(model: String) throws {
    let folder = scratch()
    defer { try? FileManager.default.removeItem(at: folder) }
    let input = fixturesDirectory.appendingPathComponent(model).path
    let output = folder.appendingPathComponent("out").path
    let dry = try runTool("qconvert", [input, "-o", output, "--dry-run"])
    #expect(dry.status == 0)
    let run = try runTool("qconvert", [input, "-o", output, "--quiet"])
    #expect(run.status == 0, "\(run.stderr)")
    #expect(run.stderr.isEmpty)
    let packPath = output + "/model.safetensors"
    let size = try #require(try FileManager.default.attributesOfItem(atPath: packPath)[.size] as? Int)
    #expect(dry.stdout.contains("output file \(size) bytes"))
    let config = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: output + "/config.json"))) as? [String: Any]
    #expect((config?["quantization"] as? [String: Any])?["bits"] as? Int == 4)

    // The pack dequantizes close to the input.
    let original = try Checkpoint.open(input).source
    let pack = try PackedCheckpoint(wrapping: try SafetensorsFile(path: packPath))
    #expect(pack.tensors == original.tensors)
    #expect(!pack.packDescriptions.isEmpty)
    for (name, _) in pack.packDescriptions {
      let a = try original.floats(of: name)
      let b = try pack.floats(of: name)
      let error = zip(a, b).reduce(0) { $0 + Double(($1.0 - $1.1) * ($1.0 - $1.1)) }
      let norm = a.reduce(0) { $0 + Double($1 * $1) }
      #expect((error / norm).squareRoot() < 0.2, "\(name)")
    }

    let inspect = try runTool("qinspect", [output, "--format", "json"])
    #expect(inspect.status == 0)
    #expect(inspect.stdout.contains("\"bits_per_weight\""))
    #expect(inspect.stdout.contains("\"grid\""))

    let refused = try runTool("qconvert", [input, "-o", output, "--quiet"])
    #expect(refused.status != 0)
    #expect(refused.stderr.contains("--force"))
    #expect(try runTool("qconvert", [input, "-o", output, "--quiet", "--force", "--bits", "2"]).status == 0)

    let restored = folder.appendingPathComponent("f16").path
    #expect(try runTool("qconvert", [output, "-o", restored, "--to", "f16", "--quiet"]).status == 0)
    let plain = try SafetensorsFile(path: restored + "/model.safetensors")
    #expect(plain.metadata["qpack.version"] == nil)
    #expect(plain.tensors.map(\.name) == original.tensors.map(\.name))
    let leftovers = try FileManager.default.contentsOfDirectory(atPath: folder.path).filter { $0.hasPrefix(".") }
    #expect(leftovers.isEmpty)
  }

  @Test func badRuleIsAUsageError() throws {
    let input = fixturesDirectory.appendingPathComponent("tiny-llama").path
    let run = try runTool("qconvert", [input, "-o", scratch().path, "--rule", "mlp=4g24"])
    #expect(run.status == 64)
    #expect(run.stderr.contains("mlp=4g24"))
  }
}
