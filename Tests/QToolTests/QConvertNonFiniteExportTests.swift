import Foundation
import QFormats
import Testing

/// The runtime layouts refuse NaN and infinity as the native pack does; with `--allow-nonfinite`
/// MLX's layout keeps the tensor unquantized, byte for byte.
@Suite struct QConvertNonFiniteExportTests {
  static let input = fixturesDirectory.appendingPathComponent("nonfinite/nan-weight").path

  func scratch() throws -> URL {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("qconvert-nonfinite-export-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    return url
  }

  static let gptq = ["--method", "gptq", "--calib", fixturesDirectory.appendingPathComponent("tiny-chat.sample.txt").path]

  /// With '--method gptq' the refusal comes before calibration runs the model.
  @Test(arguments: [["--layout", "mlx"], ["--layout", "gguf"], ["--layout", "mlx"] + gptq, ["--layout", "gguf"] + gptq])
  func layoutsRefuseNonFiniteWeights(arguments: [String]) throws {
    let folder = try scratch()
    defer { try? FileManager.default.removeItem(at: folder) }
    let output = folder.appendingPathComponent("out").path
    let run = try runTool("qconvert", [Self.input, "-o", output, "--quiet"] + arguments)
    #expect(run.status == 1)
    #expect(run.stderr.hasPrefix("qconvert: \(Self.input)/model.safetensors: tensor '"))
    #expect(run.stderr.contains("holds nan at index"))
    #expect(run.stderr.split(separator: "\n").count == 1)
    #expect(!FileManager.default.fileExists(atPath: output))
  }

  @Test func mlxKeepsANonFiniteTensorUnquantizedWhenAllowed() throws {
    let folder = try scratch()
    defer { try? FileManager.default.removeItem(at: folder) }
    let output = folder.appendingPathComponent("out").path
    let run = try runTool("qconvert", [Self.input, "-o", output, "--layout", "mlx", "--quiet", "--allow-nonfinite"])
    #expect(run.status == 0, "\(run.stderr)")
    #expect(run.stderr.contains("warning:") && run.stderr.contains("kept unquantized"))
    let source = try SafetensorsFile(path: Self.input + "/model.safetensors")
    let written = try SafetensorsFile(path: output + "/model.safetensors")
    let names = Set(written.tensors.map(\.name))
    let tensor = "model.layers.0.mlp.up_proj.weight"
    #expect(!names.contains("model.layers.0.mlp.up_proj.scales"))
    #expect(names.contains("model.layers.0.mlp.gate_proj.scales"))
    let before = try source.withRawBytes(of: tensor) { [UInt8]($0) }
    let after = try written.withRawBytes(of: tensor) { [UInt8]($0) }
    #expect(before == after)
  }
}
