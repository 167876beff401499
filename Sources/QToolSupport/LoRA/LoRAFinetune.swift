import Foundation
import QCompute
import QEngine
import QFormats

/// Choices for the short LoRA-only fine-tuning that follows a move (LoRASuite's LFT).
public struct LoRAFinetuneOptions: Sendable {
  /// How the learning rate falls over the steps; neither warms up.
  public enum Schedule: String, Sendable, CaseIterable {
    /// The paper's: from the peak straight down to 0 at the last step.
    case linear
    /// Half a cosine from the peak to 0.
    case cosine
  }

  /// A text or JSONL file (documents from `field`) cut into windows of `context` tokens; unread
  /// when `steps` is 0.
  public var data: String
  public var field: String
  public var steps: Int
  /// The peak learning rate; the paper's Table 9 uses 1e-3.
  public var learningRate: Double
  public var schedule: Schedule
  /// Tokens per training window (inputs and shifted targets come from one window).
  public var context: Int
  /// Windows per optimizer step, their gradients averaged.
  public var batch: Int
  /// Draw the training windows from this many (seeded choice), as the paper's 100 samples; all when nil.
  public var samples: Int?
  public var weightDecay: Double
  /// Global gradient-norm clipping (Hugging Face Trainer's default is 1).
  public var maxGradientNorm: Double
  public var seed: UInt64
  /// A held-out text whose perplexity is measured before and after.
  public var evaluation: String?
  /// Windows of `evaluationContext` tokens read from `evaluation`.
  public var evaluationWindows: Int
  public var evaluationContext: Int

  public init(
    data: String, field: String = "text", steps: Int, learningRate: Double = 1e-3,
    schedule: Schedule = .linear, context: Int = 512, batch: Int = 1, samples: Int? = nil,
    weightDecay: Double = 0, maxGradientNorm: Double = 1, seed: UInt64 = 0, evaluation: String? = nil,
    evaluationWindows: Int = 8, evaluationContext: Int = 512
  ) {
    self.data = data
    self.field = field
    self.steps = steps
    self.learningRate = learningRate
    self.schedule = schedule
    self.context = context
    self.batch = batch
    self.samples = samples
    self.weightDecay = weightDecay
    self.maxGradientNorm = maxGradientNorm
    self.seed = seed
    self.evaluation = evaluation
    self.evaluationWindows = evaluationWindows
    self.evaluationContext = evaluationContext
  }

  /// The learning rate of step `step` (0-based) of `steps`.
  public func learningRate(at step: Int) -> Double {
    switch schedule {
    case .linear:
      return learningRate * Double(max(0, steps - step)) / Double(max(1, steps))
    case .cosine:
      return CosineSchedule(peak: learningRate, totalSteps: steps).learningRate(at: step)
    }
  }
}

/// Perplexity over disjoint windows of a held-out text.
public struct HeldOutPerplexity: Sendable, Equatable {
  public var perplexity: Double
  /// Mean negative log-likelihood per scored token, in nats.
  public var meanNegativeLogLikelihood: Double
  public var scoredTokens: Int
  public var windows: Int
}

/// What the fine-tuning did: the adapter with trained A/B, the loss of every step and the
/// held-out perplexities.
public struct LoRAFinetuneResult: Sendable {
  public var adapter: PEFTAdapter
  /// Mean training cross-entropy of each step's windows, before that step's update.
  public var losses: [Double]
  /// Held-out perplexity of the new base alone, with the adapter as given, and after training.
  public var baseline: HeldOutPerplexity?
  public var before: HeldOutPerplexity?
  public var after: HeldOutPerplexity?
  public var trainingWindows: Int
  public var seconds: Double
}

/// LoRASuite's lightweight fine-tuning on the CPU: the new base as a `TrainableDecoder` with the
/// moved adapter installed, only A and B trained by AdamW on causal-LM cross-entropy.
public enum LoRAFinetune {
  /// One line of progress (a step's loss, an evaluation) for the caller to show.
  public typealias Progress = (String) -> Void

  /// Fine-tunes `adapter` on the base model at `newBase` (a model folder with tokenizer.json).
  /// - Throws: `LoRAFinetuneError` for a base without config, data too short for one window or an
  ///   adapter that does not fit the base; the engine's errors for misshapen weights.
  public static func run(
    adapter: PEFTAdapter, newBase: String, options: LoRAFinetuneOptions, progress: Progress = { _ in }
  ) throws -> LoRAFinetuneResult {
    let start = Date()
    let checkpoint = try Checkpoint.open(newBase).dequantized()
    guard let configData = checkpoint.configData else {
      throw LoRAFinetuneError.baseModel(path: newBase, detail: "No config.json beside the weights")
    }
    let config = try ModelConfig(data: configData, location: checkpoint.configPath ?? newBase)
    let folder = checkpoint.folder ?? newBase
    let tokenizer = try Tokenizer(folder: URL(fileURLWithPath: folder))
    // A wrapper (Gemma 3's `model.language_model.`) keeps its decoder under a prefix.
    let prefix = ModelEvaluation.languageModelPrefix(of: checkpoint.source)
    var decoder = try TrainableDecoder(source: checkpoint.source, config: config, prefix: prefix)
    if options.steps > 0 {
      try PositionLimit.check(
        option: "--context", value: options.context, model: decoder.configuration, location: newBase, use: .training)
    }
    if options.evaluation != nil {
      try PositionLimit.check(
        option: "--eval-context", value: options.evaluationContext, model: decoder.configuration, location: newBase,
        use: .inference)
    }
    let names = try install(adapter, into: &decoder)

    let windows = options.steps > 0 ? try trainingWindows(tokenizer: tokenizer, options: options) : []
    let evaluationTokens = try options.evaluation.map { try tokens(of: $0, field: options.field, tokenizer: tokenizer) }

    var baseline: HeldOutPerplexity?
    var before: HeldOutPerplexity?
    if let evaluationTokens {
      let bare = try withoutAdapter(decoder, names: names)
      baseline = try perplexity(of: bare, tokens: evaluationTokens, options: options)
      progress("held-out perplexity, base alone: \(format(baseline))")
      // A fresh adapter (every B zero) gives the base's outputs; no second pass for it.
      let untouched = adapter.modules.values.allSatisfy { $0.b.elements.allSatisfy { $0 == 0 } }
      before = untouched ? baseline : try perplexity(of: decoder, tokens: evaluationTokens, options: options)
      progress("held-out perplexity, adapter before fine-tuning: \(format(before))")
    }

    var optimizer = AdamW(weightDecay: options.weightDecay)
    var generator = SeededGenerator(seed: options.seed &+ 1)
    var order: [Int] = []
    var losses: [Double] = []
    let vocabulary = decoder.configuration.vocabularySize
    for step in 0..<options.steps {
      let stepStart = Date()
      var gradients: [String: [Float]] = [:]
      var loss: Double = 0
      for _ in 0..<options.batch {
        if order.isEmpty { order = Array(windows.indices).shuffled(using: &generator) }
        let window = windows[order.removeLast()]
        let pass = try decoder.forward(tokens: Array(window.dropLast()))
        let result = try TrainingLoss.crossEntropy(
          logits: pass.logits.elements, vocabularySize: vocabulary, targets: Array(window.dropFirst()))
        loss += result.value / Double(options.batch)
        let windowGradients = try decoder.backward(pass, dLogits: result.gradient)
        for (name, values) in windowGradients {
          var sum = gradients.removeValue(forKey: name) ?? [Float](repeating: 0, count: values.count)
          let weight = 1 / Float(options.batch)
          for index in sum.indices { sum[index] += values[index] * weight }
          gradients[name] = sum
        }
      }
      let norm = GradientClipping.clip(&gradients, maxNorm: options.maxGradientNorm)
      let rate = options.learningRate(at: step)
      var parameters = decoder.parameters
      try optimizer.update(&parameters, gradients: gradients, learningRate: rate)
      decoder.parameters = parameters
      losses.append(loss)
      let seconds = Date().timeIntervalSince(stepStart)
      progress(
        "step \(step + 1)/\(options.steps): loss \(String(format: "%.4f", loss)), grad norm "
          + "\(String(format: "%.3f", norm)), lr \(String(format: "%.3g", rate)), \(String(format: "%.1f", seconds))s")
    }

    var after: HeldOutPerplexity?
    if let evaluationTokens, options.steps > 0 {
      after = try perplexity(of: decoder, tokens: evaluationTokens, options: options)
      progress("held-out perplexity, adapter after fine-tuning: \(format(after))")
    }
    return LoRAFinetuneResult(
      adapter: try extract(adapter, from: decoder), losses: losses, baseline: baseline, before: before,
      after: after, trainingWindows: windows.count, seconds: Date().timeIntervalSince(start))
  }

  /// The parameter name of one factor of `key` in a `TrainableDecoder`.
  static func parameterName(_ key: LoRAModuleKey, a: Bool) -> String {
    "model.layers.\(key.layer).\(key.module).lora_\(a ? "A" : "B").weight"
  }

  /// Installs the adapter's A/B (scale alpha/r, or alpha/√r with rsLoRA) and makes them the only
  /// trainable parameters; returns their names.
  static func install(_ adapter: PEFTAdapter, into decoder: inout TrainableDecoder) throws -> Set<String> {
    guard !adapter.modules.isEmpty else {
      throw LoRAFinetuneError.adapter(module: adapter.folder, detail: "No LoRA modules to train")
    }
    // `addLoRA` scales by alpha / rank; this alpha gives the adapter's own scale. A fused
    // module (Phi-3's qkv_proj) has its own rank at the same scale.
    let byRank = Dictionary(grouping: adapter.modules, by: \.value.rank).mapValues { Set($0.map(\.key.module)).sorted() }
    for (rank, kinds) in byRank.sorted(by: { $0.key < $1.key }) {
      try decoder.addLoRA(rank: rank, alpha: Float(adapter.scale * Double(rank)), targets: kinds)
    }
    var parameters = decoder.parameters
    let shapes = decoder.shapes
    // Modules `addLoRA` added that the adapter lacks stay at zero and untrained.
    for name in parameters.keys where name.contains(".lora_") {
      parameters[name] = [Float](repeating: 0, count: parameters[name]?.count ?? 0)
    }
    var names: Set<String> = []
    for (key, factors) in adapter.modules {
      for (isA, matrix) in [(true, factors.a), (false, factors.b)] {
        let name = parameterName(key, a: isA)
        guard let shape = shapes[name], shape == [matrix.rows, matrix.columns] else {
          throw LoRAFinetuneError.adapter(
            module: "\(key)",
            detail: "lora_\(isA ? "A" : "B") is \(matrix.rows) x \(matrix.columns), but the new base wants "
              + (shapes[name].map { "\($0[0]) x \($0[1])" } ?? "no such module"))
        }
        parameters[name] = matrix.elements.map(Float.init)
        names.insert(name)
      }
    }
    decoder.parameters = parameters
    decoder.trainable = names
    return names
  }

  /// The adapter with the decoder's current A/B.
  static func extract(_ adapter: PEFTAdapter, from decoder: TrainableDecoder) throws -> PEFTAdapter {
    var output = adapter
    let parameters = decoder.parameters
    for (key, factors) in adapter.modules {
      guard let a = parameters[parameterName(key, a: true)], let b = parameters[parameterName(key, a: false)] else {
        throw LoRAFinetuneError.adapter(module: "\(key)", detail: "Factors missing after training")
      }
      output.modules[key] = try LoRAFactors(
        a: try Matrix(rows: factors.a.rows, columns: factors.a.columns, elements: a.map(Double.init)),
        b: try Matrix(rows: factors.b.rows, columns: factors.b.columns, elements: b.map(Double.init)))
    }
    return output
  }

  /// The decoder with every B zeroed: the base model's outputs.
  static func withoutAdapter(_ decoder: TrainableDecoder, names: Set<String>) throws -> TrainableDecoder {
    var bare = decoder
    var parameters = bare.parameters
    for name in names where name.contains(".lora_B.") {
      parameters[name] = [Float](repeating: 0, count: parameters[name]?.count ?? 0)
    }
    bare.parameters = parameters
    return bare
  }

  /// The data's tokens, documents separated by the end-of-sequence token.
  static func tokens(of path: String, field: String, tokenizer: Tokenizer) throws -> [Int] {
    let dataset = try TextDataset(contentsOf: URL(fileURLWithPath: path), field: field)
    return dataset.tokenize(with: tokenizer, separator: tokenizer.eosTokenID.map { [$0] } ?? [])
  }

  /// Disjoint windows of `context` tokens (the last, shorter one dropped unless it is the only
  /// one), optionally a seeded choice of `samples` of them.
  static func trainingWindows(tokenizer: Tokenizer, options: LoRAFinetuneOptions) throws -> [[Int]] {
    let ids = try tokens(of: options.data, field: options.field, tokenizer: tokenizer)
    guard ids.count >= 2 else {
      throw LoRAFinetuneError.data(path: options.data, detail: "Text has \(ids.count) tokens; training needs at least 2")
    }
    var windows: [[Int]] = []
    var start = 0
    while start + options.context <= ids.count {
      windows.append(Array(ids[start..<(start + options.context)]))
      start += options.context
    }
    if windows.isEmpty { windows = [ids] }
    if let samples = options.samples, samples < windows.count {
      var generator = SeededGenerator(seed: options.seed)
      windows = Array(windows.shuffled(using: &generator).prefix(samples))
    }
    return windows
  }

  /// Perplexity over the first `evaluationWindows` disjoint windows of `evaluationContext` tokens, scored as
  /// `DecoderModel.perplexity` (and `np_llm.py --ppl`) score them.
  static func perplexity(of decoder: TrainableDecoder, tokens: [Int], options: LoRAFinetuneOptions) throws
    -> HeldOutPerplexity
  {
    let vocabulary = decoder.configuration.vocabularySize
    var total: Double = 0
    var scored = 0
    var windows = 0
    for window in try TokenWindows(ids: tokens, context: options.evaluationContext) {
      if windows >= options.evaluationWindows { break }
      windows += 1
      let ids = Array(window.ids)
      guard window.scoredCount > 0 else { continue }
      let logits = try decoder.forward(tokens: Array(ids.dropLast())).logits.elements
      for position in window.firstScoredPosition..<(ids.count - 1) {
        total += negativeLogLikelihood(logits, base: position * vocabulary, count: vocabulary, target: ids[position + 1])
      }
      scored += window.scoredCount
    }
    guard scored > 0 else {
      throw LoRAFinetuneError.data(path: options.evaluation ?? "-", detail: "Text has \(tokens.count) tokens; nothing to score")
    }
    let mean = total / Double(scored)
    return HeldOutPerplexity(
      perplexity: Foundation.exp(mean), meanNegativeLogLikelihood: mean, scoredTokens: scored, windows: windows)
  }

  /// `-log softmax(logits[base..<base+count])[target]`, in Double.
  static func negativeLogLikelihood(_ logits: [Float], base: Int, count: Int, target: Int) -> Double {
    var largest = -Float.infinity
    for index in base..<(base + count) { largest = max(largest, logits[index]) }
    var sum: Double = 0
    for index in base..<(base + count) { sum += Foundation.exp(Double(logits[index] - largest)) }
    return Foundation.log(sum) - Double(logits[base + target] - largest)
  }

  static func format(_ result: HeldOutPerplexity?) -> String {
    guard let result else { return "-" }
    return String(format: "%.4f", result.perplexity) + " (\(result.scoredTokens) tokens, \(result.windows) windows)"
  }

  /// The process's peak resident set size in bytes (`VmHWM`), nil where /proc is missing.
  public static func peakResidentBytes() -> Int? {
    guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return nil }
    guard let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmHWM:") }) else { return nil }
    let fields = line.split(separator: " ", omittingEmptySubsequences: true)
    guard fields.count >= 2, let kilobytes = Int(fields[1]) else { return nil }
    return kilobytes * 1024
  }
}
