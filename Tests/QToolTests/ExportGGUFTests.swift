import Foundation
import QCompute
import QFormats
import QToolSupport
import Testing

@Suite("GGUF export")
struct ExportGGUFTests {
  static let checkedTensors = [
    "blk.0.attn_q.weight", "blk.0.attn_k.weight", "blk.0.ffn_down.weight", "blk.1.attn_v.weight",
  ]

  func exportTinyLlama(_ type: GGUFBlockType) throws -> (folder: String, file: GGUFFile) {
    let checkpoint = try Checkpoint.open(ExportFixtures.tinyLlama)
    let folder = try ExportFixtures.scratchFolder("gguf")
    let path = folder + "/model.gguf"
    try GGUFExport.exportGGUF(
      source: checkpoint.source, configData: try ExportFixtures.tinyLlamaConfig(), to: path,
      type: type)
    return (folder, try GGUFFile(path: path))
  }

  @Test func writesQ8_0BlocksLikeTheGGUFPackage() throws {
    let (folder, file) = try exportTinyLlama(.q8_0)
    defer { try? FileManager.default.removeItem(atPath: folder) }
    let expected = try SafetensorsFile(
      path: ExportFixtures.path("export", "gguf-q8_0-expected.safetensors"))
    for name in Self.checkedTensors {
      let info = try #require(file.tensorInfo(named: name), "missing \(name)")
      #expect(info.type == .q8_0)
      let same =
        try ExportFixtures.bytes(of: name, in: file)
        == ExportFixtures.bytes(of: name + "/q8_0", in: expected)
      #expect(same, "\(name) differs from gguf.quants.quantize after llama.cpp's permutation")
    }
  }

  @Test(arguments: [GGUFBlockType.q8_0, .q4_0])
  func decodesCloseToThePermutedSource(type: GGUFBlockType) throws {
    let (folder, file) = try exportTinyLlama(type)
    defer { try? FileManager.default.removeItem(atPath: folder) }
    let expected = try SafetensorsFile(
      path: ExportFixtures.path("export", "gguf-q8_0-expected.safetensors"))
    for name in Self.checkedTensors {
      let info = try #require(file.tensorInfo(named: name))
      #expect(info.type.rawValue == type.ggmlTypeID)
      let decoded = try file.withRawBytes(of: name) { try GGUFBlocks.decode($0, type: type) }
      let reference = try expected.floats(of: name + "/f32")
      try #require(decoded.count == reference.count)
      // Q8_0 and Q4_0 are symmetric: the step is absmax/127 or absmax/8 of each block of 32.
      let levels: Float = type == .q8_0 ? 127 : 8
      for block in 0..<(reference.count / 32) {
        let range = (block * 32)..<(block * 32 + 32)
        let absmax = reference[range].map(abs).max() ?? 0
        let error = range.map { abs(decoded[$0] - reference[$0]) }.max() ?? 0
        #expect(error <= absmax / levels * 1.001 + 1e-6, "\(name) block \(block)")
      }
    }
  }

  @Test func writesLlamaKeysNamesAndTypes() throws {
    let (folder, file) = try exportTinyLlama(.q4_K)
    defer { try? FileManager.default.removeItem(atPath: folder) }
    #expect(file.values["general.architecture"] == .string("llama"))
    let expectedInts: [String: Int] = [
      "llama.context_length": 512, "llama.embedding_length": 64, "llama.block_count": 2,
      "llama.feed_forward_length": 128, "llama.attention.head_count": 4,
      "llama.attention.head_count_kv": 2, "llama.rope.dimension_count": 16,
      "llama.vocab_size": 256, "general.quantization_version": 2,
    ]
    for (key, value) in expectedInts {
      #expect(file.values[key] == .uint32(UInt32(value)), "\(key)")
    }
    #expect(file.values["llama.rope.freq_base"] == .float32(10_000))
    #expect(file.values["llama.attention.layer_norm_rms_epsilon"] == .float32(1e-5))

    var expectedNames: Set<String> = ["token_embd.weight", "output_norm.weight"]
    for layer in 0..<2 {
      for part in [
        "attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down", "attn_norm",
        "ffn_norm",
      ] {
        expectedNames.insert("blk.\(layer).\(part).weight")
      }
    }
    // Tied embeddings: no output.weight.
    #expect(Set(file.allTensors.map(\.name)) == expectedNames)
    for tensor in file.allTensors {
      if tensor.name.hasSuffix("_norm.weight") {
        #expect(tensor.type == .f32, "\(tensor.name)")
      } else {
        // Rows of 64 and 128 are not whole Q4_K blocks: llama-quantize's fallback is Q5_0.
        #expect(tensor.type == .q5_0, "\(tensor.name)")
      }
    }
    let source = try SafetensorsFile(path: ExportFixtures.tinyLlama + "/model.safetensors")
    #expect(try file.floats(of: "output_norm.weight") == source.floats(of: "model.norm.weight"))
    #expect(
      try file.floats(of: "blk.1.ffn_norm.weight")
        == source.floats(of: "model.layers.1.post_attention_layernorm.weight"))
  }

  @Test(arguments: [GGUFBlockType.q4_K, .q2_K])
  func encodesKQuantsAndFallsBackToF16(type: GGUFBlockType) throws {
    let folder = try ExportFixtures.scratchFolder("gguf-kquant")
    defer { try? FileManager.default.removeItem(atPath: folder) }
    let rows = 3
    let wide = (0..<(rows * 256)).map { Float(sin(Double($0) * 0.37)) * 0.1 }
    let narrow = (0..<(2 * 20)).map { Float($0) / 16 - 1 }
    try ExportFixtures.writeF32(
      [("model.layers.0.mlp.up_proj.weight", [rows, 256], wide),
       ("model.layers.0.mlp.down_proj.weight", [2, 20], narrow)],
      to: folder + "/in.safetensors")
    let path = folder + "/out.gguf"
    try GGUFExport.exportGGUF(
      source: try SafetensorsFile(path: folder + "/in.safetensors"),
      configData: try ExportFixtures.tinyLlamaConfig(), to: path, type: type)
    let file = try GGUFFile(path: path)
    #expect(file.tensorInfo(named: "blk.0.ffn_up.weight")?.type.rawValue == type.ggmlTypeID)
    #expect(file.tensorInfo(named: "blk.0.ffn_up.weight")?.shape == [rows, 256])
    #expect(file.tensorInfo(named: "blk.0.ffn_down.weight")?.type == .f16)
    #expect(try file.floats(of: "blk.0.ffn_down.weight") == narrow)
    let decoded = try file.withRawBytes(of: "blk.0.ffn_up.weight") {
      try GGUFBlocks.decode($0, type: type)
    }
    // Asymmetric min/max grids with 4 or 2 bits and quantized sub-block scales: within one step.
    let levels: Float = type == .q4_K ? 15 : 3
    for row in 0..<rows {
      let range = (row * 256)..<(row * 256 + 256)
      let spread = (wide[range].max() ?? 0) - (wide[range].min() ?? 0)
      let error = range.map { abs(decoded[$0] - wide[$0]) }.max() ?? 0
      #expect(error <= spread / levels, "row \(row)")
    }
  }

  @Test func rejectsTensorsLlamaHasNoNameFor() throws {
    let folder = try ExportFixtures.scratchFolder("gguf-unknown")
    defer { try? FileManager.default.removeItem(atPath: folder) }
    try ExportFixtures.writeF32([("vision_tower.patch.weight", [2, 32], Array(repeating: 1, count: 64))],
      to: folder + "/in.safetensors")
    #expect(throws: ExportError.self) {
      try GGUFExport.exportGGUF(
        source: try SafetensorsFile(path: folder + "/in.safetensors"),
        configData: try ExportFixtures.tinyLlamaConfig(), to: folder + "/out.gguf", type: .q8_0)
    }
    #expect(!FileManager.default.fileExists(atPath: folder + "/out.gguf"))
  }

  @Test func requiresTheHyperParameters() throws {
    let checkpoint = try Checkpoint.open(ExportFixtures.tinyLlama)
    let folder = try ExportFixtures.scratchFolder("gguf-config")
    defer { try? FileManager.default.removeItem(atPath: folder) }
    let config = Data(#"{"model_type": "llama", "hidden_size": 64}"#.utf8)
    #expect(throws: ExportError.self) {
      try GGUFExport.exportGGUF(
        source: checkpoint.source, configData: config, to: folder + "/out.gguf", type: .q8_0)
    }
  }

  /// A family whose block is not Llama's is refused even when its tensor names are Llama's.
  @Test(arguments: ["gemma", "gemma3_text"])
  func refusesAFamilyWhoseBlockIsNotLlamas(_ modelType: String) throws {
    let checkpoint = try Checkpoint.open(ExportFixtures.tinyLlama)
    let folder = try ExportFixtures.scratchFolder("gguf-\(modelType)")
    defer { try? FileManager.default.removeItem(atPath: folder) }
    guard case .object(var members) = try JSONDecoder().decode(JSONValue.self, from: try ExportFixtures.tinyLlamaConfig())
    else { throw ExportError.output(path: folder, reason: "tiny-llama's config is not an object") }
    members["model_type"] = .string(modelType)
    let config = try JSONEncoder().encode(JSONValue.object(members))
    #expect(
      throws: ExportError.invalidConfig(
        location: "\(checkpoint.source.location)/config.json", key: "model_type",
        reason: "is '\(modelType)', whose block is not Llama's; GGUF export writes Llama's block only")
    ) {
      try GGUFExport.exportGGUF(
        source: checkpoint.source, configData: config, to: folder + "/out.gguf", type: .q8_0)
    }
    #expect(!FileManager.default.fileExists(atPath: folder + "/out.gguf"))
  }
}
