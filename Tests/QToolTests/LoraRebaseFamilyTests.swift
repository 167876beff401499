import Foundation
import QCompute
import QFormats
import Testing

@testable import QToolSupport

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
    let (run, before, after) = try rebaseAndFinetune(from: oldBase, onto: newBase, to: output)
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

  /// Moves the Llama 3 fixture's adapter onto `newBase` with six fine-tuning steps, and reads the
  /// held-out perplexity before and after fine-tuning from its report.
  func rebaseAndFinetune(from oldBase: URL, onto newBase: URL, to output: String) throws
    -> (run: ToolRun, before: Double, after: Double)
  {
    let run = try runTool(
      "lora-rebase",
      [
        oldBase.path, newBase.path, Self.adapter, "-o", output, "--finetune", Self.sample, "--steps", "6", "--lr",
        "1e-2", "--context", "32", "--eval", Self.sample, "--eval-windows", "4", "--eval-context", "32", "--seed", "3",
      ])
    #expect(run.status == 0, "\(run.stderr)")
    let before = try #require(number(after: "held-out perplexity, adapter before fine-tuning: ", in: run.stderr))
    let after = try #require(number(after: "held-out perplexity, adapter after fine-tuning: ", in: run.stderr))
    return (run, before, after)
  }

  /// Onto Phi-3, whose q/k/v and gate/up weights are stored fused, the moved pairs are stacked
  /// into one pair per fused module (rank 3r and 2r in `rank_pattern`, the scale kept by
  /// `alpha_pattern`), as PEFT wraps Phi-3's modules, and fine-tuning trains them there.
  @Test func movedAdapterIsFusedOntoPhi3() throws {
    let (oldScratch, oldBase) = try checkpoint("families/llama3")
    let (scratch, newBase) = try checkpoint("families/phi3")
    defer { for folder in [oldScratch, scratch] { try? FileManager.default.removeItem(at: folder) } }
    let output = scratch.appendingPathComponent("adapter").path
    let (run, before, after) = try rebaseAndFinetune(from: oldBase, onto: newBase, to: output)
    #expect(after < 0.97 * before, "\(run.stderr)")

    let base = try SafetensorsFile(path: newBase.appendingPathComponent("model.safetensors").path)
    let moved = try SafetensorsFile(path: output + "/adapter_model.safetensors")
    #expect(moved.tensors.count == 2 * 4 * 2)
    let ranks = ["qkv_proj": 12, "gate_up_proj": 8, "o_proj": 4, "down_proj": 4]
    for info in moved.tensors {
      let isA = info.name.hasSuffix(".lora_A.weight")
      let module = info.name.dropFirst("base_model.model.".count).dropLast(".lora_A.weight".count)
      let weight = try #require(base.info(named: module + ".weight"), "\(info.name)")
      let rank = try #require(ranks[String(module.split(separator: ".").last ?? "")], "\(info.name)")
      #expect(info.shape == (isA ? [rank, weight.shape[1]] : [weight.shape[0], rank]), "\(info.name)")
    }
    let config = try JSONDecoder().decode(
      JSONValue.self, from: Data(contentsOf: URL(fileURLWithPath: output + "/adapter_config.json")))
    #expect(config["rank_pattern"] == .object(["qkv_proj": .number(12), "gate_up_proj": .number(8)]))
    #expect(config["alpha_pattern"] == .object(["qkv_proj": .number(24), "gate_up_proj": .number(16)]))
  }

  /// Stacking is exact: the fused pair's update `B A` is the parts' updates stacked by rows, a
  /// missing part's rows zero. Each entry is one part's own sum of r products plus exact zeros,
  /// so only the product's summation order can differ: 1e-12 relative.
  @Test func fusingStacksThePartsUpdates() throws {
    var generator = SeededGenerator(seed: 5)
    func random(_ rows: Int, _ columns: Int) throws -> Matrix<Double> {
      try Matrix(rows: rows, columns: columns, elements: (0..<(rows * columns)).map { _ in Double.random(in: -1...1, using: &generator) })
    }
    let rows = ["self_attn.q_proj": 16, "self_attn.k_proj": 8, "self_attn.v_proj": 8, "mlp.gate_proj": 12, "mlp.up_proj": 12]
    var modules: [LoRAModuleKey: LoRAFactors] = [:]
    for module in ["self_attn.q_proj", "self_attn.v_proj", "mlp.gate_proj", "mlp.up_proj"] {
      modules[LoRAModuleKey(layer: 0, module: module)] = try LoRAFactors(a: try random(3, 10), b: try random(rows[module] ?? 0, 3))
    }
    let adapter = PEFTAdapter(
      folder: "-", config: [:], rank: 3, alpha: 6, useRSLoRA: false, keyPrefix: "base_model.model.model.layers.",
      modules: modules)
    let fused = try adapter.fusingParts { rows[$0] ?? 0 }
    #expect(Set(fused.modules.keys.map(\.module)) == ["self_attn.qkv_proj", "mlp.gate_up_proj"])
    for (name, parts) in PEFTAdapter.fusedModules {
      let product = try #require(fused.modules[LoRAModuleKey(layer: 0, module: name)]).product()
      var expected: [Double] = []
      for part in parts {
        if let factors = modules[LoRAModuleKey(layer: 0, module: part)] {
          expected += try factors.product().elements
        } else {
          expected += [Double](repeating: 0, count: (rows[part] ?? 0) * 10)
        }
      }
      #expect(product.elements.count == expected.count)
      let scale = expected.map(abs).max() ?? 1
      #expect(zip(product.elements, expected).allSatisfy { abs($0 - $1) <= 1e-12 * scale }, "\(name)")
    }
    #expect(fused.config["alpha_pattern"] == .object(["qkv_proj": .number(18), "gate_up_proj": .number(12)]))
  }

  /// A Phi-3 adapter (one pair per fused module, rank r throughout) is moved as its parts: onto
  /// the same Phi-3 with `--normalize` every fused update `B A` comes back (1e-5 of its largest
  /// entry, as for Llama), and onto Llama the parts are written as Llama's modules.
  @Test func phi3AdapterIsMovedAsItsParts() throws {
    let (scratch, phi3) = try checkpoint("families/phi3")
    let (llamaScratch, llama) = try checkpoint("families/llama3")
    defer { for folder in [scratch, llamaScratch] { try? FileManager.default.removeItem(at: folder) } }
    let base = try SafetensorsFile(path: phi3.appendingPathComponent("model.safetensors").path)
    var generator = SeededGenerator(seed: 9)
    var modules: [LoRAModuleKey: LoRAFactors] = [:]
    for layer in 0..<2 {
      for module in ["self_attn.qkv_proj", "self_attn.o_proj", "mlp.gate_up_proj", "mlp.down_proj"] {
        let shape = try #require(base.info(named: "model.layers.\(layer).\(module).weight")?.shape)
        func random(_ rows: Int, _ columns: Int) throws -> Matrix<Double> {
          try Matrix(
            rows: rows, columns: columns,
            elements: (0..<(rows * columns)).map { _ in Double.random(in: -0.1...0.1, using: &generator) })
        }
        modules[LoRAModuleKey(layer: layer, module: module)] = try LoRAFactors(a: try random(4, shape[1]), b: try random(shape[0], 4))
      }
    }
    let kinds: [JSONValue] = ["qkv_proj", "o_proj", "gate_up_proj", "down_proj"].map { .string($0) }
    let adapter = PEFTAdapter(
      folder: "-", config: ["peft_type": .string("LORA"), "r": .number(4), "lora_alpha": .number(8), "target_modules": .array(kinds)],
      rank: 4, alpha: 8, useRSLoRA: false, keyPrefix: "base_model.model.model.layers.", modules: modules)
    let adapterPath = scratch.appendingPathComponent("phi3-adapter").path
    try adapter.write(to: adapterPath)

    let same = scratch.appendingPathComponent("same").path
    let run = try runTool("lora-rebase", [phi3.path, phi3.path, adapterPath, "-o", same, "--normalize"])
    #expect(run.status == 0, "\(run.stderr)")
    let moved = try SafetensorsFile(path: same + "/adapter_model.safetensors")
    #expect(moved.tensors.count == 16)
    for (key, factors) in modules {
      let names = adapter.tensorNames(for: key)
      let a = try #require(moved.info(named: names.a), "\(names.a)")
      let b = try #require(moved.info(named: names.b), "\(names.b)")
      let product = try Matrix.matmul(
        try Matrix(rows: b.shape[0], columns: b.shape[1], elements: try moved.floats(of: names.b).map(Double.init)),
        try Matrix(rows: a.shape[0], columns: a.shape[1], elements: try moved.floats(of: names.a).map(Double.init)))
      let expected = try factors.product()
      let largest = expected.elements.map(abs).max() ?? 1
      let worst = zip(product.elements, expected.elements).map { abs($0 - $1) }.max() ?? .infinity
      #expect(product.elements.count == expected.elements.count && worst <= 1e-5 * largest, "\(key): \(worst)")
    }

    let onto = scratch.appendingPathComponent("llama").path
    let toLlama = try runTool("lora-rebase", [phi3.path, llama.path, adapterPath, "-o", onto])
    #expect(toLlama.status == 0, "\(toLlama.stderr)")
    let llamaAdapter = try PEFTAdapter.read(folder: onto)
    #expect(Set(llamaAdapter.modules.keys.map(\.kind)) == ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"])
  }
}
