import Foundation
import QFormats
import QToolSupport
import Testing

@Suite("MLX export")
struct ExportMLXTests {
  static let modules = [
    "model.layers.0.mlp.up_proj", "model.layers.0.mlp.down_proj",
    "model.layers.0.self_attn.k_proj", "model.layers.1.self_attn.q_proj",
  ]

  func export(
    bits: Int = 4, groupSize: Int = 64, overrides: [String: MLXExport.Settings?] = [:]
  ) throws -> String {
    let checkpoint = try Checkpoint.open(ExportFixtures.tinyLlama)
    let output = try ExportFixtures.scratchFolder("mlx")
    try MLXExport.exportMLX(
      source: checkpoint.source, configData: checkpoint.configData,
      sideFilesFrom: ExportFixtures.tinyLlama, to: output, bits: bits, groupSize: groupSize,
      overrides: overrides)
    return output
  }

  /// Compares one module's three tensors with mlx.core.quantize's, byte for byte.
  func expectMatches(module: String, setting: String, in output: SafetensorsFile, expected: SafetensorsFile)
    throws
  {
    for part in ["weight", "scales", "biases"] {
      let name = "\(module).\(part)"
      let reference = try #require(expected.info(named: "\(setting)/\(name)"))
      let actual = try #require(output.info(named: name), "missing \(name)")
      #expect(actual.dtype == reference.dtype, "\(name)")
      #expect(actual.shape == reference.shape, "\(name)")
      let same =
        try ExportFixtures.bytes(of: name, in: output)
        == ExportFixtures.bytes(of: "\(setting)/\(name)", in: expected)
      #expect(same, "\(name) differs from mlx.core.quantize at \(setting)")
    }
  }

  @Test func quantizesLikeMLXAt4BitsGroup64() throws {
    let folder = try export()
    defer { try? FileManager.default.removeItem(atPath: folder) }
    let output = try SafetensorsFile(path: folder + "/model.safetensors")
    let expected = try SafetensorsFile(path: ExportFixtures.path("export", "mlx-expected.safetensors"))
    for module in Self.modules {
      try expectMatches(module: module, setting: "b4g64", in: output, expected: expected)
    }
    #expect(output.metadata["format"] == "mlx")
    // Embeddings are quantized too; norms are copied unchanged.
    #expect(output.info(named: "model.embed_tokens.weight")?.dtype == .u32)
    #expect(output.info(named: "model.embed_tokens.scales")?.shape == [256, 1])
    let source = try SafetensorsFile(path: ExportFixtures.tinyLlama + "/model.safetensors")
    for name in ["model.norm.weight", "model.layers.1.input_layernorm.weight"] {
      #expect(try ExportFixtures.bytes(of: name, in: output) == ExportFixtures.bytes(of: name, in: source))
    }
  }

  @Test func quantizesLikeMLXAt2BitsGroup32() throws {
    let folder = try export(bits: 2, groupSize: 32)
    defer { try? FileManager.default.removeItem(atPath: folder) }
    let output = try SafetensorsFile(path: folder + "/model.safetensors")
    let expected = try SafetensorsFile(path: ExportFixtures.path("export", "mlx-expected.safetensors"))
    for module in Self.modules {
      try expectMatches(module: module, setting: "b2g32", in: output, expected: expected)
    }
  }

  /// MLX packs 5 and 6 bits as one LSB-first stream across word boundaries, as it packs 3.
  @Test(arguments: [(bits: 5, groupSize: 32, setting: "b5g32"), (bits: 6, groupSize: 64, setting: "b6g64")])
  func quantizesLikeMLXAtFiveAndSixBits(bits: Int, groupSize: Int, setting: String) throws {
    let folder = try export(bits: bits, groupSize: groupSize)
    defer { try? FileManager.default.removeItem(atPath: folder) }
    let output = try SafetensorsFile(path: folder + "/model.safetensors")
    let expected = try SafetensorsFile(path: ExportFixtures.path("export", "mlx-expected.safetensors"))
    for module in Self.modules {
      try expectMatches(module: module, setting: setting, in: output, expected: expected)
    }
    let config = try ExportFixtures.readJSON(folder + "/config.json")
    #expect(config["quantization"]?["bits"]?.intValue == bits)
  }

  @Test func writesConfigAndIndexLikeMLXLM() throws {
    let folder = try export(
      overrides: [
        "model.layers.0.mlp.down_proj.weight": (bits: 2, groupSize: 32),
        "model.layers.0.self_attn.v_proj.weight": nil,
      ])
    defer { try? FileManager.default.removeItem(atPath: folder) }
    let output = try SafetensorsFile(path: folder + "/model.safetensors")
    let expected = try SafetensorsFile(path: ExportFixtures.path("export", "mlx-expected.safetensors"))
    try expectMatches(
      module: "model.layers.0.mlp.down_proj", setting: "b2g32", in: output, expected: expected)
    try expectMatches(
      module: "model.layers.0.mlp.up_proj", setting: "b4g64", in: output, expected: expected)
    #expect(output.info(named: "model.layers.0.self_attn.v_proj.weight")?.dtype == .f16)
    #expect(output.info(named: "model.layers.0.self_attn.v_proj.scales") == nil)

    let config = try ExportFixtures.readJSON(folder + "/config.json")
    let quantization = try #require(config["quantization"])
    #expect(config["quantization_config"] == quantization)
    #expect(quantization["bits"]?.intValue == 4)
    #expect(quantization["group_size"]?.intValue == 64)
    #expect(quantization["mode"]?.stringValue == "affine")
    #expect(quantization["model.layers.0.mlp.down_proj"]?["bits"]?.intValue == 2)
    #expect(quantization["model.layers.0.mlp.down_proj"]?["group_size"]?.intValue == 32)
    // A kept module is stated, as mlx_lm's load reads it: not quantized.
    #expect(quantization["model.layers.0.self_attn.v_proj"] == .bool(false))
    #expect(config["hidden_size"]?.intValue == 64)
    #expect(config["rms_norm_eps"]?.doubleValue == 1e-5)

    let index = try ExportFixtures.readJSON(folder + "/model.safetensors.index.json")
    let weightMap = try #require(index["weight_map"]?.objectValue)
    #expect(Set(weightMap.keys) == Set(output.tensors.map(\.name)))
    #expect(Set(weightMap.values) == [.string("model.safetensors")])
    let totalSize = output.tensors.reduce(0) { $0 + $1.byteCount }
    #expect(index["metadata"]?["total_size"]?.intValue == totalSize)
  }

  @Test func leavesIndivisibleRowsAndVectorsUnquantized() throws {
    let folder = try ExportFixtures.scratchFolder("mlx-indivisible")
    defer { try? FileManager.default.removeItem(atPath: folder) }
    let input = folder + "/in.safetensors"
    let odd = (0..<(3 * 48)).map { Float($0) / 7 - 9 }
    let even = (0..<(2 * 64)).map { Float($0 % 13) - 6 }
    try ExportFixtures.writeF32(
      [
        ("a.odd.weight", [3, 48], odd), ("a.even.weight", [2, 64], even),
        ("a.norm.weight", [64], Array(even[0..<64])),
      ], to: input)
    let output = try ExportFixtures.scratchFolder("mlx-indivisible-out")
    defer { try? FileManager.default.removeItem(atPath: output) }
    try MLXExport.exportMLX(
      source: try SafetensorsFile(path: input), configData: nil, sideFilesFrom: nil, to: output,
      bits: 4, groupSize: 32)
    let written = try SafetensorsFile(path: output + "/model.safetensors")
    #expect(written.info(named: "a.odd.weight") == TensorInfo(name: "a.odd.weight", dtype: .f32, shape: [3, 48]))
    #expect(try written.floats(of: "a.odd.weight") == odd)
    #expect(written.info(named: "a.norm.weight")?.dtype == .f32)
    // F32 weights keep F32 scales, as mlx.core.quantize returns them.
    #expect(written.info(named: "a.even.weight") == TensorInfo(name: "a.even.weight", dtype: .u32, shape: [2, 8]))
    #expect(written.info(named: "a.even.scales") == TensorInfo(name: "a.even.scales", dtype: .f32, shape: [2, 2]))
  }

  @Test(arguments: [(bits: 7, groupSize: 64), (bits: 1, groupSize: 64), (bits: 4, groupSize: 16), (bits: 4, groupSize: 65)])
  func rejectsSettingsMLXCannotLoad(bits: Int, groupSize: Int) throws {
    let checkpoint = try Checkpoint.open(ExportFixtures.tinyLlama)
    let output = try ExportFixtures.scratchFolder("mlx-reject")
    defer { try? FileManager.default.removeItem(atPath: output) }
    #expect(throws: ExportError.self) {
      try MLXExport.exportMLX(
        source: checkpoint.source, configData: checkpoint.configData, sideFilesFrom: nil,
        to: output, bits: bits, groupSize: groupSize)
    }
    #expect(!FileManager.default.fileExists(atPath: output + "/model.safetensors"))
  }
}
