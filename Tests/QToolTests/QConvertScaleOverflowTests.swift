import Foundation
import QCompute
import QFormats
import Testing

@testable import QToolSupport

/// Finite weights that F16 scales cannot hold (Fixtures/overflow, made by
/// `Fixtures/make_overflow_fixtures.py`): packs store those scales in F32 and read back finite;
/// runtime layouts that must use F16 refuse the tensor by name.
@Suite struct QConvertScaleOverflowTests {
  static func fixture(_ name: String) -> String {
    fixturesDirectory.appendingPathComponent("overflow/\(name)").path
  }

  func scratch() throws -> URL {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent(
      "qconvert-overflow-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    return url
  }

  /// Packs `input` with `arguments`, dequantizes it with `--to`, and returns the pack's
  /// descriptions and the values read back.
  func packAndRestore(_ input: String, _ arguments: [String], to dtype: String, in folder: URL)
    throws
    -> (descriptions: [String: PackDescription], restored: SafetensorsFile)
  {
    let pack = folder.appendingPathComponent("pack").path
    let packed = try runTool("qconvert", [input, "-o", pack, "--quiet"] + arguments)
    #expect(packed.status == 0, "\(packed.stderr)")
    #expect(packed.stderr.isEmpty)
    let verify = try runTool("qinspect", [pack, "--verify"])
    #expect(verify.status == 0, "\(verify.stderr)")
    let plain = folder.appendingPathComponent("plain").path
    let back = try runTool("qconvert", [pack, "--to", dtype, "-o", plain, "--quiet"])
    #expect(back.status == 0, "\(back.stderr)")
    let descriptions = try PackedCheckpoint(
      wrapping: try SafetensorsFile(path: pack + "/model.safetensors")
    )
    .packDescriptions
    return (descriptions, try SafetensorsFile(path: plain + "/model.safetensors"))
  }

  @Test(arguments: ["rtn", "clip", "hqq", "bilevel"]) func largeWeightsPackFinitely(method: String)
    throws
  {
    let folder = try scratch()
    defer { try? FileManager.default.removeItem(at: folder) }
    let input = Self.fixture("large-f32")
    let (descriptions, restored) = try packAndRestore(
      input, ["--method", method, "--group-size", "32"], to: "f32", in: folder)
    let name = "model.layers.0.mlp.up_proj.weight"
    let values = try restored.floats(of: name)
    #expect(values.allSatisfy { $0.isFinite })
    let original = try SafetensorsFile(path: input + "/model.safetensors").floats(of: name)
    for index in [1 * 64 + 3, 2 * 64 + 40, 3 * 64] {
      #expect(
        abs(values[index] - original[index]) <= abs(original[index]) * 0.15, "element \(index)")
    }
    if method != "bilevel" {
      #expect(descriptions[name]?.scaleDType == .f32)
      #expect(descriptions["model.layers.0.mlp.gate_proj.weight"]?.scaleDType == .f16)
    }
  }

  @Test func f16ScaleRoundingOverflowIsAvoided() throws {
    let folder = try scratch()
    defer { try? FileManager.default.removeItem(at: folder) }
    let (descriptions, restored) = try packAndRestore(
      Self.fixture("f16-max"), ["--rule", ".*=4g64:sym"], to: "f16", in: folder)
    let name = "model.layers.0.mlp.down_proj.weight"
    #expect(descriptions[name]?.scaleDType == .f32)
    #expect(try restored.floats(of: name).allSatisfy { $0.isFinite })
  }

  /// `--to f16` of weights F16 cannot hold (packed or not) refuses rather than write infinity.
  @Test(arguments: [true, false]) func toF16RefusesValuesItCannotHold(packFirst: Bool) throws {
    let folder = try scratch()
    defer { try? FileManager.default.removeItem(at: folder) }
    var input = Self.fixture("large-f32")
    if packFirst {
      let pack = folder.appendingPathComponent("pack").path
      let packed = try runTool("qconvert", [input, "-o", pack, "--group-size", "32", "--quiet"])
      #expect(packed.status == 0, "\(packed.stderr)")
      input = pack
    }
    let output = folder.appendingPathComponent("plain").path
    let run = try runTool("qconvert", [input, "--to", "f16", "-o", output, "--quiet"])
    #expect(run.status == 1)
    #expect(
      run.stderr.hasPrefix(
        "qconvert: \(input)/model.safetensors: tensor 'model.layers.0.mlp.up_proj.weight' holds "))
    #expect(
      run.stderr.hasSuffix(
        " at index [1, 3], which F16 cannot hold; use '--to f32' or '--to bf16'\n"))
    #expect(!FileManager.default.fileExists(atPath: output))
    let bf16 = try runTool("qconvert", [input, "--to", "bf16", "-o", output, "--quiet"])
    #expect(bf16.status == 0, "\(bf16.stderr)")
  }

  @Test func mlxLayoutReadsBackFinite() throws {
    let folder = try scratch()
    defer { try? FileManager.default.removeItem(at: folder) }
    let output = folder.appendingPathComponent("mlx").path
    let run = try runTool(
      "qconvert",
      [Self.fixture("large-f32"), "-o", output, "--layout", "mlx", "--group-size", "32", "--quiet"])
    #expect(run.status == 0, "\(run.stderr)")
    let file = try SafetensorsFile(path: output + "/model.safetensors")
    let module = "model.layers.0.mlp.up_proj"
    #expect(try file.floats(of: module + ".scales").allSatisfy { $0.isFinite })
    #expect(try file.floats(of: module + ".biases").allSatisfy { $0.isFinite })
  }

  @Test func ggufRefusesAWeightF16CannotHold() throws {
    let folder = try scratch()
    defer { try? FileManager.default.removeItem(at: folder) }
    let output = folder.appendingPathComponent("model.gguf").path
    let input = Self.fixture("large-odd-rows")
    let run = try runTool("qconvert", [input, "-o", output, "--layout", "gguf", "--quiet"])
    #expect(run.status == 1)
    #expect(
      run.stderr
        == "qconvert: \(input)/model.safetensors: tensor 'model.layers.0.mlp.up_proj.weight' holds 70000.0 at element 207, which F16 stores as infinity or NaN\n"
    )
    #expect(!FileManager.default.fileExists(atPath: output))
  }

  /// Block types whose F16 scale overflows (Q8_0's d = amax / 127 past 65504 x 127) read back
  /// as infinity or NaN: the GGUF export refuses such a tensor by name, whatever the block type.
  @Test(arguments: [GGMLType.q8_0, .q4_0, .f16]) func ggufBlocksWhoseScaleOverflowsAreRefused(
    type: GGMLType
  ) throws {
    var values = [Float](repeating: 0.5, count: 64)
    values[40] = 1e7
    let bytes = try GGUFExport.encode(values, as: type, tensor: "blk.0.ffn_up.weight")
    #expect {
      try GGUFExport.checkStored(
        bytes, values: values, as: type, tensor: "w", location: "m.safetensors")
    } throws: { error in
      "\(error)"
        == "m.safetensors: tensor 'w' holds 10000000.0 at element 40, which \(type.name) stores as infinity or NaN"
    }
    // Ordinary values pass.
    let small = [Float](repeating: 0.5, count: 64)
    try GGUFExport.checkStored(
      try GGUFExport.encode(small, as: type, tensor: "w"), values: small, as: type, tensor: "w",
      location: "m")
  }
}
