import Foundation
import QFormats
import Testing

/// `lora-rebase` moves an adapter of the Llama-shaped family fixture (Fixtures/lora/llama3-adapter)
/// onto other families: Qwen3 (q and k norms), Gemma 3 text (GELU, `1 + w` norms, scaled
/// embedding, sliding layers) and the Gemma 3 wrapper (layers under `model.language_model.`),
/// and a Qwen3 whose heads, MLP width and depth differ from the source's (Fixtures/lora/qwen3-head16),
/// then fine-tunes it there.
@Suite struct LoraRebaseFamilyTests {
  static let adapter = fixturesDirectory.appendingPathComponent("lora/llama3-adapter").path
  static let sample = fixturesDirectory.appendingPathComponent("tiny-chat.sample.txt").path

  /// The number after `label` on a line of `text`.
  func number(after label: String, in text: String) -> Double? {
    guard let line = text.split(separator: "\n").first(where: { $0.hasPrefix(label) }) else { return nil }
    return Double(line.dropFirst(label.count).split(separator: " ").first ?? "")
  }

  /// A scratch copy of the checkpoint folder `fixture` (under Fixtures/) with the byte-level tokenizer.
  func checkpoint(_ fixture: String) throws -> (scratch: URL, folder: URL) {
    let manager = FileManager.default
    let scratch = manager.temporaryDirectory.appendingPathComponent("rebase-family-\(UUID().uuidString)")
    let folder = scratch.appendingPathComponent("model")
    try manager.createDirectory(at: folder, withIntermediateDirectories: true)
    for file in ["config.json", "model.safetensors"] {
      try manager.copyItem(
        at: fixturesDirectory.appendingPathComponent(fixture).appendingPathComponent(file),
        to: folder.appendingPathComponent(file))
    }
    try manager.copyItem(
      at: FamilyToolTests.root.appendingPathComponent("byte-tokenizer.json"),
      to: folder.appendingPathComponent("tokenizer.json"))
    return (scratch, folder)
  }

  @Test(arguments: [
    ("families/qwen3", "base_model.model.model.layers."), ("families/gemma3_text", "base_model.model.model.layers."),
    ("families/gemma3", "base_model.model.model.language_model.layers."),
    ("lora/qwen3-head16", "base_model.model.model.layers."),
  ])
  func movedAndFinetunedAdapterFitsTheNewFamily(_ fixture: String, _ keyPrefix: String) throws {
    let (oldScratch, oldBase) = try checkpoint("families/llama3")
    let (scratch, newBase) = try checkpoint(fixture)
    defer { for folder in [oldScratch, scratch] { try? FileManager.default.removeItem(at: folder) } }
    let output = scratch.appendingPathComponent("adapter").path
    let run = try runTool(
      "lora-rebase",
      [
        oldBase.path, newBase.path, Self.adapter, "-o", output, "--finetune", Self.sample, "--steps", "6", "--lr",
        "1e-2", "--context", "32", "--eval", Self.sample, "--eval-windows", "4", "--eval-context", "32", "--seed", "3",
      ])
    #expect(run.status == 0, "\(run.stderr)")
    let before = try #require(number(after: "held-out perplexity, adapter before fine-tuning: ", in: run.stderr))
    let after = try #require(number(after: "held-out perplexity, adapter after fine-tuning: ", in: run.stderr))
    // The drop is ~35% on the family fixtures and ~7% on qwen3-head16, whose near-uniform init
    // (perplexity ~ vocabulary) leaves little to learn in six steps.
    #expect(after < 0.97 * before, "\(run.stderr)")

    // Every factor names a weight of the new base under PEFT's key for it, shaped to fit it.
    let base = try SafetensorsFile(path: newBase.appendingPathComponent("model.safetensors").path)
    let moved = try SafetensorsFile(path: output + "/adapter_model.safetensors")
    #expect(moved.tensors.count == 2 * 7 * 2)
    for info in moved.tensors {
      #expect(info.name.hasPrefix(keyPrefix), "\(info.name)")
      let isA = info.name.hasSuffix(".lora_A.weight")
      let module = info.name.dropFirst("base_model.model.".count).dropLast(".lora_A.weight".count)
      let weight = try #require(base.info(named: module + ".weight"), "\(info.name)")
      #expect(info.shape == (isA ? [4, weight.shape[1]] : [weight.shape[0], 4]), "\(info.name)")
    }
  }
}
