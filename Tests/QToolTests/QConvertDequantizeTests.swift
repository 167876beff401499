import Foundation
import QCompute
import QFormats
import Testing

/// qconvert on quantized input: a GGUF's blocks and an MLX folder's packed linears are
/// dequantized, never dropped; what cannot be read stops the run with the tensor named.
@Suite struct QConvertDequantizeTests {
  let dequant = fixturesDirectory.appendingPathComponent("dequant")

  func scratch() -> URL {
    FileManager.default.temporaryDirectory.appendingPathComponent(
      "qconvert-dequant-\(UUID().uuidString)")
  }

  /// Every tensor of `expected` is in `output` with its shape and bit-identical F32 values.
  func expectSameFloats(_ output: String, _ expected: String) throws {
    let written = try SafetensorsFile(path: output)
    let reference = try SafetensorsFile(path: expected)
    #expect(written.tensors.map(\.name).sorted() == reference.tensors.map(\.name).sorted())
    for info in reference.tensors {
      #expect(written.info(named: info.name)?.shape == info.shape, "\(info.name)")
      let got = try written.floats(of: info.name).map(\.bitPattern)
      let want = try reference.floats(of: info.name).map(\.bitPattern)
      #expect(got == want, "\(info.name)")
    }
  }

  @Test func ggufToF32CarriesEveryTensor() throws {
    let folder = scratch()
    defer { try? FileManager.default.removeItem(at: folder) }
    let output = folder.appendingPathComponent("out").path
    let run = try runTool(
      "qconvert",
      [dequant.appendingPathComponent("blocks.gguf").path, "-o", output, "--to", "f32", "--quiet"])
    #expect(run.status == 0, "\(run.stderr)")
    try expectSameFloats(
      output + "/model.safetensors",
      dequant.appendingPathComponent("blocks.expected.safetensors").path)
  }

  @Test func ggufQuantizeRunCarriesEveryTensor() throws {
    let folder = scratch()
    defer { try? FileManager.default.removeItem(at: folder) }
    let input = dequant.appendingPathComponent("blocks.gguf").path
    let output = folder.appendingPathComponent("out").path
    let run = try runTool("qconvert", [input, "-o", output, "--group-size", "32", "--quiet"])
    #expect(run.status == 0, "\(run.stderr)")
    let pack = try PackedCheckpoint(wrapping: SafetensorsFile(path: output + "/model.safetensors"))
    let source = try Checkpoint.open(input).dequantized().source
    #expect(pack.tensors.map(\.name) == source.tensors.map(\.name))
    #expect(!pack.packDescriptions.isEmpty)
  }

  @Test func unsupportedGGUFTypeStopsTheRun() throws {
    let folder = scratch()
    defer { try? FileManager.default.removeItem(at: folder) }
    let input = dequant.appendingPathComponent("unsupported.gguf").path
    let output = folder.appendingPathComponent("out").path
    let run = try runTool("qconvert", [input, "-o", output, "--to", "f16", "--quiet"])
    #expect(run.status == 1)
    #expect(
      run.stderr
        == "qconvert: \(input): tensor 'blk.0.ffn_down.weight' is IQ2_XXS, which cannot be dequantized (supported: Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K to Q6_K, IQ4_NL)\n"
    )
    #expect(!FileManager.default.fileExists(atPath: output))
  }

  @Test func mlxFolderToF32IsDequantized() throws {
    let folder = scratch()
    defer { try? FileManager.default.removeItem(at: folder) }
    let output = folder.appendingPathComponent("out").path
    let run = try runTool(
      "qconvert",
      [dequant.appendingPathComponent("mlx-model").path, "-o", output, "--to", "f32", "--quiet"])
    #expect(run.status == 0, "\(run.stderr)")
    try expectSameFloats(
      output + "/model.safetensors",
      dequant.appendingPathComponent("mlx-model.expected.safetensors").path)
    let config =
      try JSONSerialization.jsonObject(
        with: Data(contentsOf: URL(fileURLWithPath: output + "/config.json"))) as? [String: Any]
    #expect(config?["model_type"] as? String == "tiny")
    #expect(config?["quantization"] == nil)
    #expect(config?["quantization_config"] == nil)
  }

  @Test func mlxConfigThatContradictsItsTensorsStopsTheRun() throws {
    let folder = scratch()
    defer { try? FileManager.default.removeItem(at: folder) }
    let input = dequant.appendingPathComponent("mlx-contradicts").path
    let output = folder.appendingPathComponent("out").path
    let run = try runTool("qconvert", [input, "-o", output, "--to", "f16", "--quiet"])
    #expect(run.status == 1)
    #expect(
      run.stderr.hasPrefix("qconvert: \(input): MLX-quantized tensor 'proj.weight' is U32 [2, 16]"))
    #expect(run.stderr.filter { $0 == "\n" }.count == 1)
    #expect(!FileManager.default.fileExists(atPath: output))
  }

  @Test func qdiffReadsAGGUFAsItsDequantizedFloats() throws {
    let folder = scratch()
    defer { try? FileManager.default.removeItem(at: folder) }
    let input = dequant.appendingPathComponent("blocks.gguf").path
    let output = folder.appendingPathComponent("out").path
    #expect(try runTool("qconvert", [input, "-o", output, "--to", "f32", "--quiet"]).status == 0)
    let same = try runTool("qdiff", [input, output, "--format", "json"])
    #expect(same.status == 0, "\(same.stderr)")
    let mlx = try runTool(
      "qdiff",
      [
        dequant.appendingPathComponent("mlx-model").path,
        dequant.appendingPathComponent("mlx-model.expected.safetensors").path,
      ])
    #expect(mlx.status == 0, "\(mlx.stdout)\(mlx.stderr)")
  }
}
