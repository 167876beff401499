import Foundation
import QCompute
import QFormats
import QToolSupport
import Testing

private let tinyChat = fixturesDirectory.appendingPathComponent("tiny-chat").path
private let tinyAdapter = fixturesDirectory.appendingPathComponent("lora/tiny-adapter").path
private let sampleText = fixturesDirectory.appendingPathComponent("tiny-chat.sample.txt").path

private func temporaryFolder(_ name: String) -> String {
  FileManager.default.temporaryDirectory
    .appendingPathComponent("lora-rebase-data-\(name)-\(ProcessInfo.processInfo.processIdentifier)").path
}

/// The number after `label` on a line of `text`.
private func number(after label: String, in text: String) -> Double? {
  guard let line = text.split(separator: "\n").first(where: { $0.hasPrefix(label) }) else { return nil }
  return Double(line.dropFirst(label.count).split(separator: " ").first ?? "")
}

/// `lora-rebase --data` (the layer map from activation CKA) and `--fresh` (the baseline adapter).
@Suite struct LoraRebaseDataTests {
  struct QDiffOutput: Decodable { var data: DataComparisonResult }

  /// The layer map comes from the activation CKA `qdiff --data` computes on the same text, not
  /// from the weights; a model against itself has CKA 1 on the diagonal and keeps its layers.
  @Test func dataMapsLayersByActivationCKA() throws {
    let output = temporaryFolder("activations")
    defer { try? FileManager.default.removeItem(atPath: output) }
    let run = try runTool(
      "lora-rebase",
      [tinyChat, tinyChat, tinyAdapter, "-o", output, "--data", sampleText, "--data-context", "32", "--format", "json"])
    #expect(run.status == 0, "\(run.stderr)")
    let report = try JSONDecoder().decode(LoraRebaseReport.self, from: Data(run.stdout.utf8))
    #expect(report.layerSource == "activation-cka")
    let layerData = try #require(report.layerData)
    #expect(layerData.text == sampleText && layerData.tokenization == "shared")
    #expect(layerData.examples >= 4)
    #expect(report.layers == [0, 1])
    for index in 0..<2 {
      let value = try #require(report.cka[index][index])
      #expect(abs(value - 1) < 1e-6, "CKA(\(index), \(index)) = \(value)")
    }

    let diff = try runTool(
      "qdiff", [tinyChat, tinyChat, "--data", sampleText, "--context", "32", "--windows", "8", "--format", "json"])
    let expected = try #require(
      try JSONDecoder().decode(QDiffOutput.self, from: Data(diff.stdout.utf8)).data.layerSimilarity, "\(diff.stderr)")
    #expect(expected.source == "activations")
    #expect(report.cka == expected.matrix)
    #expect(layerData.windows == (try JSONDecoder().decode(QDiffOutput.self, from: Data(diff.stdout.utf8))).data.windows)

    // The same output again: replacing it takes '--force'.
    let weights = try runTool(
      "lora-rebase", [tinyChat, tinyChat, tinyAdapter, "-o", output, "--format", "json", "--force"])
    let weightReport = try JSONDecoder().decode(LoraRebaseReport.self, from: Data(weights.stdout.utf8))
    #expect(weightReport.layerSource == "weight-cka" && weightReport.layerData == nil)
    #expect(weightReport.cka != report.cka)

    let table = try runTool(
      "lora-rebase",
      [tinyChat, tinyChat, tinyAdapter, "-o", output, "--data", sampleText, "--data-context", "32", "--force"])
    #expect(table.stdout.contains("Layer map (activation-cka on \(sampleText): shared tokenization"), "\(table.stdout)")
  }

  /// With different tokenizers each base reads its own ids of the same text pieces.
  @Test func dataWithDifferentTokenizersUsesTextPieces() throws {
    let work = temporaryFolder("swapped")
    let output = temporaryFolder("swapped-out")
    defer { for path in [work, output] { try? FileManager.default.removeItem(atPath: path) } }
    try FileManager.default.copyItem(atPath: tinyChat, toPath: work)
    let file = URL(fileURLWithPath: work).appendingPathComponent("tokenizer.json")
    var root = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: file)) as? [String: Any])
    var bpe = try #require(root["model"] as? [String: Any])
    var vocabulary = try #require(bpe["vocab"] as? [String: Int])
    let (first, second) = (try #require(vocabulary["Ġthe"]), try #require(vocabulary["Ġquick"]))
    (vocabulary["Ġthe"], vocabulary["Ġquick"]) = (second, first)
    bpe["vocab"] = vocabulary
    root["model"] = bpe
    try JSONSerialization.data(withJSONObject: root).write(to: file)
    let run = try runTool(
      "lora-rebase",
      [tinyChat, work, tinyAdapter, "-o", output, "--data", sampleText, "--data-context", "32", "--format", "json"])
    #expect(run.status == 0, "\(run.stderr)")
    let report = try JSONDecoder().decode(LoraRebaseReport.self, from: Data(run.stdout.utf8))
    #expect(report.layerSource == "activation-cka")
    #expect(report.layerData?.tokenization == "separate")
    #expect(report.layers == [0, 1])
  }

  @Test func tooShortDataIsNamed() throws {
    let output = temporaryFolder("short")
    let text = temporaryFolder("short.txt")
    defer { for path in [output, text] { try? FileManager.default.removeItem(atPath: path) } }
    try Data("Hi".utf8).write(to: URL(fileURLWithPath: text))
    let run = try runTool("lora-rebase", [tinyChat, tinyChat, tinyAdapter, "-o", output, "--data", text])
    #expect(run.status == 1, "\(run.stderr)")
    #expect(run.stderr.contains(text), "\(run.stderr)")
    #expect(!FileManager.default.fileExists(atPath: output))
  }

  @Test(arguments: [
    ["--data", sampleText, "--mapping", sampleText], ["--data", sampleText, "--data-windows", "0"],
    ["--data", sampleText, "--data-context", "1"], ["--fresh", "--normalize"], ["--fresh", "--data", sampleText],
    ["--fresh", "--mapping", sampleText], ["--fresh", "--plot", "x.svg"],
  ])
  func conflictingFlagsExit64(flags: [String]) throws {
    let output = temporaryFolder("conflict")
    defer { try? FileManager.default.removeItem(atPath: output) }
    let run = try runTool("lora-rebase", [tinyChat, tinyChat, tinyAdapter, "-o", output] + flags)
    #expect(run.status == 64, "\(flags): \(run.stderr)")
    #expect(!FileManager.default.fileExists(atPath: output))
  }

  /// `--fresh` writes the adapter's modules on every layer of the new base, A uniform in ±1/√in
  /// (PEFT's Kaiming init: mean 0, variance bound²/3) and B zero, with the same r and alpha.
  @Test func freshAdapterHasStandardInitOnEveryLayer() throws {
    let partial = temporaryFolder("partial")
    let output = temporaryFolder("fresh")
    defer { for path in [partial, output] { try? FileManager.default.removeItem(atPath: path) } }
    var source = try PEFTAdapter.read(folder: tinyAdapter)
    source.modules = source.modules.filter { $0.key.layer == 0 && ["q_proj", "down_proj"].contains($0.key.kind) }
    try source.write(to: partial)

    let run = try runTool("lora-rebase", [tinyChat, tinyChat, partial, "-o", output, "--fresh", "--format", "json"])
    #expect(run.status == 0, "\(run.stderr)")
    let report = try JSONDecoder().decode(LoraFreshReport.self, from: Data(run.stdout.utf8))
    #expect(report.fresh && report.layers == 2 && report.modules == ["mlp.down_proj", "self_attn.q_proj"])
    let fresh = try PEFTAdapter.read(folder: output)
    #expect(fresh.rank == source.rank && fresh.alpha == source.alpha)
    let expectedKeys = Set((0..<2).flatMap { layer in
      ["self_attn.q_proj", "mlp.down_proj"].map { LoRAModuleKey(layer: layer, module: $0) }
    })
    #expect(Set(fresh.modules.keys) == expectedKeys)
    let base = try SafetensorsFile(path: tinyChat + "/model.safetensors")
    for (key, factors) in fresh.modules {
      let shape = try #require(base.info(named: key.baseTensor)?.shape)
      #expect([factors.b.rows, factors.a.columns] == shape && factors.a.rows == source.rank, "\(key)")
      #expect(factors.b.elements.allSatisfy { $0 == 0 }, "\(key)")
      let bound = 1 / Double(shape[1]).squareRoot()
      let values = factors.a.elements
      #expect(values.allSatisfy { abs($0) <= bound }, "\(key)")
      let mean = values.reduce(0, +) / Double(values.count)
      let variance = values.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(values.count)
      let expectedVariance = bound * bound / 3
      // Standard errors for n uniform draws: sd/√n for the mean, ~0.89·var/√n for the variance.
      let n = Double(values.count)
      #expect(abs(mean) < 5 * (expectedVariance / n).squareRoot(), "\(key) mean \(mean)")
      #expect(abs(variance - expectedVariance) < 5 * 0.9 * expectedVariance / n.squareRoot(), "\(key) variance \(variance)")
    }
    let config = try #require(
      try JSONDecoder().decode(JSONValue.self, from: Data(contentsOf: URL(fileURLWithPath: output + "/adapter_config.json")))
        .objectValue)
    #expect(config["target_modules"] == .array([.string("down_proj"), .string("q_proj")]))
    #expect(config["base_model_name_or_path"] != source.config["base_model_name_or_path"])
  }

  /// `--fresh --finetune` starts at the base model (B zero) and training lowers the held-out
  /// perplexity; the written B is no longer zero.
  @Test func freshAdapterTrains() throws {
    let output = temporaryFolder("fresh-trained")
    defer { try? FileManager.default.removeItem(atPath: output) }
    let run = try runTool(
      "lora-rebase",
      [
        tinyChat, tinyChat, tinyAdapter, "-o", output, "--fresh", "--finetune", sampleText, "--steps", "6", "--lr",
        "1e-2", "--context", "32", "--eval", sampleText, "--eval-windows", "4", "--eval-context", "32",
      ])
    #expect(run.status == 0, "\(run.stderr)")
    let base = try #require(number(after: "held-out perplexity, base alone: ", in: run.stderr))
    let before = try #require(number(after: "held-out perplexity, adapter before fine-tuning: ", in: run.stderr))
    let after = try #require(number(after: "held-out perplexity, adapter after fine-tuning: ", in: run.stderr))
    #expect(before == base, "\(run.stderr)")
    #expect(after < 0.95 * before, "\(run.stderr)")
    let trained = try PEFTAdapter.read(folder: output)
    #expect(trained.modules.values.contains { factors in factors.b.elements.contains { $0 != 0 } })
  }
}
