import Foundation
import QCompute
import QEngine
import QFormats
import Testing

@testable import QToolSupport

private let tinyChat = fixturesDirectory.appendingPathComponent("tiny-chat").path
private let tinyAdapter = fixturesDirectory.appendingPathComponent("lora/tiny-adapter").path
private let sampleText = fixturesDirectory.appendingPathComponent("tiny-chat.sample.txt").path

private func temporaryFolder(_ name: String) -> String {
  FileManager.default.temporaryDirectory
    .appendingPathComponent("lora-finetune-\(name)-\(ProcessInfo.processInfo.processIdentifier)").path
}

/// The number after `label` on a line of `text`.
private func number(after label: String, in text: String) -> Double? {
  guard let line = text.split(separator: "\n").first(where: { $0.hasPrefix(label) }) else { return nil }
  return Double(line.dropFirst(label.count).split(separator: " ").first ?? "")
}

@Suite struct LoRAFinetuneTests {
  /// The tiny adapter targets the same modules of tiny-chat (same layer shapes as tiny-llama).
  static let finetuneArguments = [
    "--normalize", "--finetune", sampleText, "--steps", "6", "--lr", "1e-2", "--context", "32",
    "--eval", sampleText, "--eval-windows", "4", "--eval-context", "32", "--seed", "3",
  ]

  /// A few seeded steps lower the loss on the training text, reproducibly, and the written adapter
  /// differs from the moved one only in A/B values.
  @Test func fewStepsLowerTheLossAndKeepTheLayout() throws {
    let plain = temporaryFolder("plain")
    let tuned = temporaryFolder("tuned")
    let again = temporaryFolder("again")
    defer { for folder in [plain, tuned, again] { try? FileManager.default.removeItem(atPath: folder) } }
    let moved = try runTool("lora-rebase", [tinyChat, tinyChat, tinyAdapter, "-o", plain, "--normalize"])
    #expect(moved.status == 0, "\(moved.stderr)")
    let run = try runTool("lora-rebase", [tinyChat, tinyChat, tinyAdapter, "-o", tuned] + Self.finetuneArguments)
    #expect(run.status == 0, "\(run.stderr)")
    let before = try #require(number(after: "held-out perplexity, adapter before fine-tuning: ", in: run.stderr))
    let after = try #require(number(after: "held-out perplexity, adapter after fine-tuning: ", in: run.stderr))
    #expect(after < 0.95 * before, "\(run.stderr)")
    #expect(run.stderr.contains("step 6/6: loss"))

    let rerun = try runTool("lora-rebase", [tinyChat, tinyChat, tinyAdapter, "-o", again] + Self.finetuneArguments)
    #expect(rerun.status == 0, "\(rerun.stderr)")
    let weights = "adapter_model.safetensors"
    #expect(
      FileManager.default.contents(atPath: tuned + "/" + weights)
        == FileManager.default.contents(atPath: again + "/" + weights))

    let reference = try SafetensorsFile(path: plain + "/" + weights)
    let result = try SafetensorsFile(path: tuned + "/" + weights)
    #expect(reference.tensors.map(\.name).sorted() == result.tensors.map(\.name).sorted())
    var changed = 0
    for info in reference.tensors {
      let other = try #require(result.info(named: info.name))
      #expect(other.shape == info.shape && other.dtype == info.dtype, "\(info.name)")
      #expect(info.name.hasPrefix("base_model.model.model.layers."))
      if try reference.floats(of: info.name) != result.floats(of: info.name) { changed += 1 }
    }
    #expect(changed == reference.tensors.count)
    let configs = try [plain, tuned].map {
      try JSONDecoder().decode(JSONValue.self, from: Data(contentsOf: URL(fileURLWithPath: $0 + "/adapter_config.json")))
    }
    #expect(configs[0] == configs[1])
  }

  /// The installed adapter gives the logits of the base with `scale · B A` merged into its
  /// weights (alpha / r, and alpha / √r with rsLoRA); zeroing B gives the base's own.
  @Test(arguments: [false, true]) func installedAdapterEqualsMergedWeights(rsLoRA: Bool) throws {
    var adapter = try PEFTAdapter.read(folder: tinyAdapter)
    adapter.useRSLoRA = rsLoRA
    let checkpoint = try Checkpoint.open(tinyChat)
    let config = try ModelConfig(data: try #require(checkpoint.configData), location: tinyChat)
    var decoder = try TrainableDecoder(source: checkpoint.source, config: config)
    var merged = decoder
    let names = try LoRAFinetune.install(adapter, into: &decoder)
    #expect(names.count == 2 * adapter.modules.count)
    #expect(decoder.trainable == names)
    let scale = rsLoRA ? Double(adapter.alpha) / Double(adapter.rank).squareRoot() : adapter.alpha / Double(adapter.rank)
    var parameters = merged.parameters
    for (key, factors) in adapter.modules {
      let name = "model.layers.\(key.layer).\(key.module).weight"
      var weight = try #require(parameters[name])
      let (outputs, inputs, rank) = (factors.b.rows, factors.a.columns, factors.a.rows)
      for row in 0..<outputs {
        for column in 0..<inputs {
          var sum = 0.0
          for k in 0..<rank { sum += factors.b[row, k] * factors.a[k, column] }
          weight[row * inputs + column] += Float(scale * sum)
        }
      }
      parameters[name] = weight
    }
    merged.parameters = parameters
    let tokens = [1, 5, 300, 42, 7, 2000, 13, 99]
    let withAdapter = try decoder.forward(tokens: tokens).logits.elements
    let reference = try merged.forward(tokens: tokens).logits.elements
    var worst: Float = 0
    for index in reference.indices { worst = max(worst, abs(withAdapter[index] - reference[index])) }
    #expect(worst < 1e-3, "largest logit difference \(worst)")

    let base = try TrainableDecoder(source: checkpoint.source, config: config).forward(tokens: tokens).logits.elements
    let bare = try LoRAFinetune.withoutAdapter(decoder, names: names).forward(tokens: tokens).logits.elements
    #expect(zip(base, bare).allSatisfy { abs($0 - $1) < 1e-4 })
    #expect(zip(base, withAdapter).contains { abs($0 - $1) > 1e-3 })

    let extracted = try LoRAFinetune.extract(adapter, from: decoder)
    for (key, factors) in adapter.modules {
      let back = try #require(extracted.modules[key])
      #expect(zip(back.a.elements, factors.a.elements).allSatisfy { abs($0 - $1) <= 1e-6 * max(1, abs($1)) })
      #expect(zip(back.b.elements, factors.b.elements).allSatisfy { abs($0 - $1) <= 1e-6 * max(1, abs($1)) })
    }
  }

  /// Held-out perplexity scores the windows as disjoint chunks, against a plain transcription.
  @Test func perplexityScoresDisjointWindows() throws {
    let checkpoint = try Checkpoint.open(tinyChat)
    let config = try ModelConfig(data: try #require(checkpoint.configData), location: tinyChat)
    let decoder = try TrainableDecoder(source: checkpoint.source, config: config)
    let tokens = (0..<23).map { ($0 * 37 + 5) % 2752 }
    let options = LoRAFinetuneOptions(data: "", steps: 0, evaluationWindows: 2, evaluationContext: 8)
    let result = try LoRAFinetune.perplexity(of: decoder, tokens: tokens, options: options)
    var total = 0.0
    for start in [0, 8] {
      let window = Array(tokens[start..<(start + 8)])
      let logits = try decoder.forward(tokens: Array(window.dropLast())).logits
      for row in 0..<7 {
        let values = logits.row(row).map(Double.init)
        let largest = values.max() ?? 0
        let logSum = largest + Foundation.log(values.reduce(0) { $0 + Foundation.exp($1 - largest) })
        total += logSum - values[window[row + 1]]
      }
    }
    #expect(result.scoredTokens == 14 && result.windows == 2)
    #expect(abs(result.meanNegativeLogLikelihood - total / 14) < 1e-6)
  }

  /// The paper's schedule: linear from the peak, no warm-up.
  @Test func linearScheduleHasNoWarmUp() {
    let options = LoRAFinetuneOptions(data: "", steps: 4, learningRate: 1e-3)
    #expect((0..<4).map { options.learningRate(at: $0) } == [1e-3, 7.5e-4, 5e-4, 2.5e-4])
  }

  @Test(arguments: [
    ["--steps", "0"], ["--lr", "-1"], ["--lr", "0"], ["--context", "1"], ["--batch", "0"], ["--samples", "0"], ["--eval-context", "1"],
    ["--schedule", "step"],
  ])
  func badFlagsExit64(flags: [String]) throws {
    let output = temporaryFolder("bad")
    defer { try? FileManager.default.removeItem(atPath: output) }
    let run = try runTool(
      "lora-rebase", [tinyChat, tinyChat, tinyAdapter, "-o", output, "--finetune", sampleText] + flags)
    #expect(run.status == 64, "\(flags): \(run.stderr)")
    #expect(!FileManager.default.fileExists(atPath: output))
  }

  @Test func missingDataIsNamed() throws {
    let output = temporaryFolder("missing")
    defer { try? FileManager.default.removeItem(atPath: output) }
    let run = try runTool(
      "lora-rebase", [tinyChat, tinyChat, tinyAdapter, "-o", output, "--finetune", "/nonexistent/kjv.txt"])
    #expect(run.status != 0)
    #expect(run.stderr.contains("/nonexistent/kjv.txt"))
  }
}
