import Foundation
import QCompute
import QFormats
import QToolSupport
import Testing

private let tinyLlama = fixturesDirectory.appendingPathComponent("tiny-llama").path
private let tinyAdapter = fixturesDirectory.appendingPathComponent("lora/tiny-adapter").path

private func temporaryFolder(_ name: String) -> String {
  FileManager.default.temporaryDirectory
    .appendingPathComponent("lora-rebase-\(name)-\(ProcessInfo.processInfo.processIdentifier)").path
}

@Suite struct LoraRebaseTests {
  /// Old == new with `--normalize`: every update `scale · B A` comes back to 1e-5.
  @Test func sameModelWithNormalizeReproducesTheAdapter() throws {
    let output = temporaryFolder("identity")
    defer { try? FileManager.default.removeItem(atPath: output) }
    let run = try runTool(
      "lora-rebase", [tinyLlama, tinyLlama, tinyAdapter, "-o", output, "--normalize", "--format", "json"])
    #expect(run.status == 0, "\(run.stderr)")
    let original = try PEFTAdapter.read(folder: tinyAdapter)
    let moved = try PEFTAdapter.read(folder: output)
    #expect(Set(moved.modules.keys) == Set(original.modules.keys))
    #expect(moved.rank == original.rank && moved.alpha == original.alpha)
    for (key, factors) in original.modules {
      let after = try #require(moved.modules[key])
      let a = try factors.product()
      let b = try after.product()
      var worst = 0.0
      for i in 0..<a.rows {
        for j in 0..<a.columns { worst = max(worst, abs(a[i, j] - b[i, j])) }
      }
      #expect(worst <= 1e-5 * max(a.elements.map(abs).max() ?? 1, 1), "\(key): \(worst)")
    }
    let report = try JSONDecoder().decode(LoraRebaseReport.self, from: Data(run.stdout.utf8))
    #expect(report.layers == [0, 1])
    #expect(report.heads.allSatisfy { $0.newToOld == [0, 1, 2, 3] })
    #expect(report.modules.count == 14)
  }

  /// The written files follow PEFT's saved layout: the same key names as the input, config
  /// fields PEFT reads, F32 tensors of the right shapes.
  @Test func outputHasPEFTLayout() throws {
    let output = temporaryFolder("layout")
    defer { try? FileManager.default.removeItem(atPath: output) }
    let run = try runTool("lora-rebase", [tinyLlama, tinyLlama, tinyAdapter, "-o", output])
    #expect(run.status == 0, "\(run.stderr)")
    let input = try SafetensorsFile(
      path: (tinyAdapter as NSString).appendingPathComponent("adapter_model.safetensors"))
    let written = try SafetensorsFile(
      path: (output as NSString).appendingPathComponent("adapter_model.safetensors"))
    #expect(Set(written.tensors.map(\.name)) == Set(input.tensors.map(\.name)))
    for info in written.tensors {
      #expect(info.dtype == .f32)
      #expect(info.shape == input.info(named: info.name)?.shape)
      #expect(info.name.hasPrefix("base_model.model.model.layers."))
    }
    let config = try #require(
      try JSONSerialization.jsonObject(
        with: Data(contentsOf: URL(fileURLWithPath: output).appendingPathComponent("adapter_config.json")))
        as? [String: Any])
    #expect(config["base_model_name_or_path"] as? String == "tiny-llama")
    #expect(config["r"] as? Int == 4)
    #expect(config["peft_type"] as? String == "LORA")
    #expect(
      Set(config["target_modules"] as? [String] ?? [])
        == ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"])
    #expect(run.stdout.contains("Layer map"))
    #expect(!FileManager.default.fileExists(atPath: output + ".partial"))
  }

  /// `qdiff --save-mapping` then `lora-rebase --mapping`: the file's maps are used as they are.
  @Test func qdiffMappingFileDrivesLayersAndHeads() throws {
    let output = temporaryFolder("mapping")
    let mapping = temporaryFolder("mapping.json")
    let edited = temporaryFolder("edited.json")
    defer {
      for path in [output, mapping, edited] { try? FileManager.default.removeItem(atPath: path) }
    }
    let diff = try runTool("qdiff", [tinyLlama, tinyLlama, "--save-mapping", mapping])
    #expect(diff.status == 0, "\(diff.stderr)")
    let saved = try LayerMappingFile.read(from: mapping)
    let run = try runTool(
      "lora-rebase",
      [tinyLlama, tinyLlama, tinyAdapter, "-o", output, "--mapping", mapping, "--normalize", "--format", "json"])
    #expect(run.status == 0, "\(run.stderr)")
    let report = try JSONDecoder().decode(LoraRebaseReport.self, from: Data(run.stdout.utf8))
    #expect(report.layerSource == "file")
    #expect(report.layers == saved.layerSimilarity.newToOld)
    #expect(report.heads.map(\.newToOld) == saved.layerSimilarity.heads.map(\.newToOld))
    #expect(report.cka == saved.layerSimilarity.matrix)

    // A hand-edited map: new layer 1 takes old layer 0 with two heads swapped, layer 0 nothing.
    var file = saved
    file.layerSimilarity.mapping[0].old = nil
    file.layerSimilarity.mapping[1].old = 0
    var heads = try #require(saved.layerSimilarity.heads.first)
    (heads.oldLayer, heads.newLayer) = (0, 1)
    heads.newToOld = [3, nil, nil, 0]
    heads.oldToNew = [3, nil, nil, 0]
    file.layerSimilarity.heads = [heads]
    try file.write(to: edited)
    let refused = try runTool(
      "lora-rebase", [tinyLlama, tinyLlama, tinyAdapter, "-o", output, "--mapping", edited, "--format", "json"])
    #expect(refused.status == 1 && refused.stderr.contains("output exists (use '--force' to replace it)"))
    let moved = try runTool(
      "lora-rebase",
      [tinyLlama, tinyLlama, tinyAdapter, "-o", output, "--mapping", edited, "--format", "json", "--force"])
    #expect(moved.status == 0, "\(moved.stderr)")
    let editedReport = try JSONDecoder().decode(LoraRebaseReport.self, from: Data(moved.stdout.utf8))
    #expect(editedReport.layers == [nil, 0])
    #expect(editedReport.heads.first?.newToOld == [3, nil, nil, 0])
    #expect(editedReport.dropped.contains("layers.1.self_attn.q_proj"))
    let adapter = try PEFTAdapter.read(folder: output)
    #expect(Set(adapter.modules.keys.map(\.layer)) == [1])
  }

  /// A mapping file made for models of another shape is refused, naming both shapes.
  @Test func mappingFileForOtherModelsIsRefused() throws {
    let output = temporaryFolder("mapping-shape")
    let mapping = temporaryFolder("mapping-shape.json")
    defer {
      for path in [output, mapping] { try? FileManager.default.removeItem(atPath: path) }
    }
    let diff = try runTool("qdiff", [tinyLlama, tinyLlama, "--save-mapping", mapping])
    #expect(diff.status == 0, "\(diff.stderr)")
    var file = try LayerMappingFile.read(from: mapping)
    file.layerSimilarity.old.kvHeads = 4
    try file.write(to: mapping)
    let run = try runTool("lora-rebase", [tinyLlama, tinyLlama, tinyAdapter, "-o", output, "--mapping", mapping])
    #expect(run.status == 1)
    #expect(run.stderr.contains("4 key/value heads, but OLD_BASE has 2, 4 and 2"), "\(run.stderr)")
    #expect(!FileManager.default.fileExists(atPath: output))
  }

  @Test func plotWritesHeatmap() throws {
    let output = temporaryFolder("plot")
    let plot = temporaryFolder("plot.svg")
    defer {
      try? FileManager.default.removeItem(atPath: output)
      try? FileManager.default.removeItem(atPath: plot)
    }
    let run = try runTool("lora-rebase", [tinyLlama, tinyLlama, tinyAdapter, "-o", output, "--plot", plot])
    #expect(run.status == 0, "\(run.stderr)")
    let svg = try String(contentsOfFile: plot, encoding: .utf8)
    #expect(svg.hasPrefix("<?xml") || svg.hasPrefix("<svg"))
    #expect(svg.contains("Weight CKA"))
  }

  /// An adapter trained on another base names the offending tensor and both shapes.
  @Test func adapterForAnotherBaseIsRefused() throws {
    let folder = temporaryFolder("mismatch")
    let output = temporaryFolder("mismatch-out")
    defer {
      try? FileManager.default.removeItem(atPath: folder)
      try? FileManager.default.removeItem(atPath: output)
    }
    var adapter = try PEFTAdapter.read(folder: tinyAdapter)
    let key = LoRAModuleKey(layer: 0, module: "self_attn.q_proj")
    adapter.modules[key] = try LoRAFactors(
      a: Matrix(rows: 4, columns: 32), b: Matrix(rows: 64, columns: 4))
    try adapter.write(to: folder)
    let run = try runTool("lora-rebase", [tinyLlama, tinyLlama, folder, "-o", output])
    #expect(run.status == 1)
    #expect(run.stderr.contains("'model.layers.0.self_attn.q_proj.weight' is [64, 64]"))
    #expect(run.stderr.contains("[64, 32]"))
    #expect(!FileManager.default.fileExists(atPath: output))
  }

  @Test func unsupportedModuleIsNamedAndCanBeSkipped() throws {
    let folder = temporaryFolder("unsupported")
    let output = temporaryFolder("unsupported-out")
    defer {
      try? FileManager.default.removeItem(atPath: folder)
      try? FileManager.default.removeItem(atPath: output)
    }
    var adapter = try PEFTAdapter.read(folder: tinyAdapter)
    adapter.modules[LoRAModuleKey(layer: 0, module: "self_attn.rotary_proj")] = try LoRAFactors(
      a: Matrix(rows: 4, columns: 64), b: Matrix(rows: 64, columns: 4))
    try adapter.write(to: folder)
    let refused = try runTool("lora-rebase", [tinyLlama, tinyLlama, folder, "-o", output])
    #expect(refused.status == 1)
    #expect(refused.stderr.contains("layers.0.self_attn.rotary_proj.lora_A.weight"))
    #expect(refused.stderr.contains("--skip-unsupported"))
    let skipped = try runTool(
      "lora-rebase", [tinyLlama, tinyLlama, folder, "-o", output, "--skip-unsupported"])
    #expect(skipped.status == 0, "\(skipped.stderr)")
    #expect(skipped.stdout.contains("layers.0.self_attn.rotary_proj"))
  }

  @Test func tooFewSharedTokensIsRefused() throws {
    let root = temporaryFolder("vocab")
    defer { try? FileManager.default.removeItem(atPath: root) }
    // A copy of tiny-llama with a different vocabulary size and a 3-token tokenizer.
    let newBase = (root as NSString).appendingPathComponent("new")
    let oldBase = (root as NSString).appendingPathComponent("old")
    // Vocabularies that differ share only 'a', 'b' and the added '<|end|>'.
    let tokenizers = [
      #"{"model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "c": 2}}, "added_tokens": [{"id": 3, "content": "<|end|>"}]}"#,
      #"{"model": {"type": "Unigram", "vocab": [["b", -1.0], ["a", -2.0], ["d", -3.0]]}, "added_tokens": [{"id": 7, "content": "<|end|>"}]}"#,
    ]
    for (base, tokenizer) in zip([oldBase, newBase], tokenizers) {
      try FileManager.default.createDirectory(atPath: base, withIntermediateDirectories: true)
      try FileManager.default.copyItem(
        atPath: (tinyLlama as NSString).appendingPathComponent("model.safetensors"),
        toPath: (base as NSString).appendingPathComponent("model.safetensors"))
      try Data(tokenizer.utf8)
        .write(to: URL(fileURLWithPath: (base as NSString).appendingPathComponent("tokenizer.json")))
    }
    let config = try String(
      contentsOfFile: (tinyLlama as NSString).appendingPathComponent("config.json"), encoding: .utf8)
    try config.write(toFile: (oldBase as NSString).appendingPathComponent("config.json"), atomically: true, encoding: .utf8)
    try config.write(toFile: (newBase as NSString).appendingPathComponent("config.json"), atomically: true, encoding: .utf8)
    let run = try runTool(
      "lora-rebase", [oldBase, newBase, tinyAdapter, "-o", (root as NSString).appendingPathComponent("out")])
    #expect(run.status == 1)
    #expect(run.stderr.contains("Only 3 token strings are shared"))
    #expect(run.stderr.contains("at least 128"))
  }

  /// The transfer matrix is fitted on token strings, not ids: a Unigram list (index = id) and
  /// the added tokens count, as lora-rebase relies on for models of other tokenizer families.
  @Test func vocabularyReadsUnigramListsAndAddedTokens() throws {
    let file = temporaryFolder("unigram.json")
    defer { try? FileManager.default.removeItem(atPath: file) }
    try Data(
      #"{"model": {"type": "Unigram", "vocab": [["<unk>", 0.0], ["a", -1.5]]}, "added_tokens": [{"id": 5, "content": "<|im_end|>"}]}"#
        .utf8
    ).write(to: URL(fileURLWithPath: file))
    #expect(try TokenEmbeddings.readVocabulary(tokenizerJSON: file) == ["<unk>": 0, "a": 1, "<|im_end|>": 5])
  }
}
