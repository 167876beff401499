import Foundation
import QCompute

/// Next-token negative log-likelihood over a text.
public struct PerplexityResult: Sendable, Equatable {
  /// `exp(mean NLL)`.
  public var perplexity: Double
  /// Mean negative log-likelihood per scored token, in nats.
  public var meanNegativeLogLikelihood: Double
  public var scoredTokens: Int
  public var windows: Int

  public init(perplexity: Double, meanNegativeLogLikelihood: Double, scoredTokens: Int, windows: Int) {
    self.perplexity = perplexity
    self.meanNegativeLogLikelihood = meanNegativeLogLikelihood
    self.scoredTokens = scoredTokens
    self.windows = windows
  }
}

extension DecoderModel {
  /// Logits for every position of `tokens`, `[tokens.count, vocabularySize]`.
  /// - Throws: `DecoderError` for an empty input or a token outside the vocabulary.
  public func logits(tokens: [Int]) throws -> Matrix<Float> {
    let hidden = try forward(tokens: tokens, cache: nil)
    let values = try hidden.withUnsafeBufferPointer { try logits(ofHidden: $0, rows: tokens.count) }
    return try Matrix(rows: tokens.count, columns: configuration.vocabularySize, elements: values)
  }

  /// The embeddings (index 0) and every layer's output (index `i + 1`), each
  /// `[tokens.count, hiddenSize]`; the last one is before the final norm.
  public func hiddenStates(tokens: [Int]) throws -> [Matrix<Float>] {
    var states: [[Float]] = []
    _ = try forward(tokens: tokens, cache: nil) { _, values in states.append(Array(values)) }
    return try states.map { try Matrix(rows: tokens.count, columns: configuration.hiddenSize, elements: $0) }
  }

  /// Perplexity of `tokens` read in windows of `context` tokens that start `stride` apart.
  ///
  /// Each window scores only targets no earlier window scored, so with `stride == context`
  /// the windows are disjoint and every token but each window's first is scored (what
  /// `np_llm.py --ppl` does); a smaller stride gives every scored token more context.
  /// Log-softmax is accumulated in Double. With `firstToken` each window's first token, never a
  /// target, is replaced by it, as llama.cpp's perplexity does with BOS for models trained with one.
  /// `windowDone` is told the number of windows read so far, after each one.
  public func perplexity(
    tokens: [Int], context: Int, stride: Int? = nil, maxWindows: Int? = nil, firstToken: Int? = nil,
    windowDone: ((Int) -> Void)? = nil
  ) throws -> PerplexityResult {
    let stride = stride ?? context
    guard context >= 2, stride >= 1, stride <= context else {
      throw DecoderError.invalidInput(
        operation: "perplexity", reason: "context \(context) and stride \(stride) do not make windows")
    }
    var total: Double = 0
    var scored = 0
    var windows = 0
    var scoredUpTo = 0
    var start = 0
    let vocabulary = configuration.vocabularySize
    let chunkRows = max(1, 8_388_608 / max(vocabulary, 1))
    while start + 1 < tokens.count {
      if let maxWindows, windows >= maxWindows { break }
      let end = min(start + context, tokens.count)
      var window = Array(tokens[start..<end])
      if let firstToken { window[0] = firstToken }
      let firstTarget = max(scoredUpTo, start + 1)
      if firstTarget < end {
        let hidden = try forward(tokens: Array(window.dropLast()), cache: nil)
        let width = configuration.hiddenSize
        // Logits of a few rows at a time: the full [context, vocabulary] block would dominate memory.
        var row = firstTarget - 1 - start
        while row < window.count - 1 {
          let rows = min(chunkRows, window.count - 1 - row)
          let block: [Float] = try hidden.withUnsafeBufferPointer { buffer in
            try self.logits(
              ofHidden: UnsafeBufferPointer(rebasing: buffer[(row * width)..<((row + rows) * width)]), rows: rows)
          }
          block.withUnsafeBufferPointer { values in
            for offset in 0..<rows {
              let target = window[row + offset + 1]
              total += Self.negativeLogLikelihood(
                UnsafeBufferPointer(rebasing: values[(offset * vocabulary)..<((offset + 1) * vocabulary)]), target: target)
            }
          }
          row += rows
        }
        scored += end - firstTarget
        scoredUpTo = end
      }
      windows += 1
      windowDone?(windows)
      if end == tokens.count { break }
      start += stride
    }
    guard scored > 0 else {
      throw DecoderError.invalidInput(operation: "perplexity", reason: "\(tokens.count) tokens give nothing to score")
    }
    let mean = total / Double(scored)
    return PerplexityResult(perplexity: exp(mean), meanNegativeLogLikelihood: mean, scoredTokens: scored, windows: windows)
  }

  /// `-log softmax(logits)[target]`, in Double.
  static func negativeLogLikelihood(_ logits: UnsafeBufferPointer<Float>, target: Int) -> Double {
    var largest = -Float.infinity
    for value in logits { largest = max(largest, value) }
    var sum: Double = 0
    for value in logits { sum += exp(Double(value - largest)) }
    return log(sum) - Double(logits[target] - largest)
  }

  /// Greedy decoding with a key-value cache: up to `maxTokens` new tokens, stopping after any
  /// of `eos`. Returns only the new tokens.
  ///
  /// `promptProcessed` runs once the prompt has been through the model and its first token
  /// chosen, so a caller can time prompt processing apart from the decoding steps.
  public func generate(
    prompt: [Int], maxTokens: Int, eos: Set<Int> = [], promptProcessed: (() -> Void)? = nil
  ) throws -> [Int] {
    guard !prompt.isEmpty else { throw DecoderError.invalidInput(operation: "generate", reason: "empty prompt") }
    guard maxTokens > 0 else { return [] }
    let cache = KeyValueCache(model: self, capacity: prompt.count + maxTokens)
    var generated: [Int] = []
    var input = prompt
    while generated.count < maxTokens {
      let hidden = try forward(tokens: input, cache: cache)
      let width = configuration.hiddenSize
      let last: [Float] = try hidden.withUnsafeBufferPointer {
        try self.logits(ofHidden: UnsafeBufferPointer(rebasing: $0[((input.count - 1) * width)..<(input.count * width)]), rows: 1)
      }
      var best = 0
      for index in last.indices where last[index] > last[best] { best = index }
      generated.append(best)
      if generated.count == 1 { promptProcessed?() }
      if eos.contains(best) { break }
      input = [best]
    }
    return generated
  }
}
