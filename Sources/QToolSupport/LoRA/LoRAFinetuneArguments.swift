import ArgumentParser

/// `lora-rebase`'s fine-tuning flags; `--eval` alone measures the moved adapter without training.
public struct LoRAFinetuneArguments: ParsableArguments {
  @Option(name: .customLong("finetune"), help: ArgumentHelp(
    "Fine-tune the moved adapter's A and B on this text or JSONL file.", valueName: "data"))
  public var data: String?

  @Option(help: "Optimizer steps of the fine-tuning.")
  public var steps: Int = 20

  @Option(help: "Peak learning rate (AdamW, no warm-up).")
  public var lr: Double = 1e-3

  @Option(help: "Learning-rate decay: linear (LoRASuite's) or cosine.")
  public var schedule: LoRAFinetuneOptions.Schedule = .linear

  @Option(help: "Tokens per training window.")
  public var context: Int = 512

  @Option(help: "Windows per step (gradients averaged).")
  public var batch: Int = 1

  @Option(help: "Train on this many windows drawn from the data (all when absent).")
  public var samples: Int?

  @Option(help: "AdamW weight decay.")
  public var weightDecay: Double = 0

  @Option(help: "Clip the global gradient norm to this value.")
  public var maxGradNorm: Double = 1

  @Option(help: "Seed for the choice and order of windows.")
  public var seed: UInt64 = 0

  @Option(help: ArgumentHelp("Print the held-out perplexity of this text before and after.", valueName: "text"))
  public var eval: String?

  @Option(help: "Windows of the evaluation text to score.")
  public var evalWindows: Int = 8

  @Option(help: "Tokens per evaluation window.")
  public var evalContext: Int = 512

  @Option(help: "JSONL field holding the text.")
  public var field: String = "text"

  public init() {}

  public func validate() throws {
    guard steps > 0 else { throw ValidationError("--steps must be positive, not \(steps)") }
    guard lr > 0, lr.isFinite else { throw ValidationError("--lr must be positive, not \(lr)") }
    guard context >= 2 else { throw ValidationError("--context must be at least 2, not \(context)") }
    guard batch > 0 else { throw ValidationError("--batch must be positive, not \(batch)") }
    if let samples, samples <= 0 { throw ValidationError("--samples must be positive, not \(samples)") }
    guard weightDecay >= 0 else { throw ValidationError("--weight-decay must not be negative") }
    guard maxGradNorm > 0 else { throw ValidationError("--max-grad-norm must be positive") }
    guard evalWindows > 0 else { throw ValidationError("--eval-windows must be positive") }
    guard evalContext >= 2 else { throw ValidationError("--eval-context must be at least 2, not \(evalContext)") }
  }

  /// The options, nil with neither `--finetune` nor `--eval` (zero steps with `--eval` alone).
  public func options() -> LoRAFinetuneOptions? {
    guard data != nil || eval != nil else { return nil }
    return LoRAFinetuneOptions(
      data: data ?? "", field: field, steps: data == nil ? 0 : steps, learningRate: lr, schedule: schedule, context: context,
      batch: batch, samples: samples, weightDecay: weightDecay, maxGradientNorm: maxGradNorm, seed: seed,
      evaluation: eval, evaluationWindows: evalWindows, evaluationContext: evalContext)
  }
}

extension LoRAFinetuneOptions.Schedule: ExpressibleByArgument {}
