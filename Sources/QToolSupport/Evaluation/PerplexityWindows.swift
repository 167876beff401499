import ArgumentParser
import Foundation
import QCompute
import QEngine

/// Which targets of each perplexity window are scored.
public enum PerplexityScoring: String, Codable, ExpressibleByArgument, CaseIterable, Sendable {
  /// Every target but the window's first token (windows `--stride` apart).
  case all
  /// Whole, disjoint windows, scoring only the targets in the second half, as
  /// `llama-perplexity` does; the first token becomes BOS when the tokenizer adds one.
  case secondHalf = "second-half"
}

/// Window arithmetic for perplexity runs: how many windows a run reads (for its progress
/// line), and `llama-perplexity`'s scoring of the second half of each window.
public enum PerplexityWindows {
  /// The windows `DecoderModel.perplexity` reads for these settings.
  public static func count(tokens: Int, context: Int, stride: Int, maxWindows: Int?) -> Int {
    guard context >= 2, stride >= 1 else { return 0 }
    var windows = 0
    var start = 0
    while start + 1 < tokens {
      if let maxWindows, windows >= maxWindows { break }
      windows += 1
      if start + context >= tokens { break }
      start += stride
    }
    return windows
  }

  /// The whole windows of `context` tokens the text holds, at most `maxWindows`.
  public static func secondHalfCount(tokens: Int, context: Int, maxWindows: Int?) -> Int {
    guard context >= 2 else { return 0 }
    return min(tokens / context, maxWindows ?? .max)
  }

  /// Mean negative log-likelihood over disjoint windows of `context` tokens, scoring in each
  /// the targets at positions `context / 2 + 1` to `context - 1`, as llama-perplexity does.
  /// - Throws: `DecoderError.invalidInput` when the text holds no whole window.
  public static func secondHalf(
    model: DecoderModel, tokens: [Int], context: Int, maxWindows: Int?, firstToken: Int?,
    windowDone: (Int) -> Void = { _ in }
  ) throws -> PerplexityResult {
    let windows = secondHalfCount(tokens: tokens.count, context: context, maxWindows: maxWindows)
    guard windows > 0 else {
      throw DecoderError.invalidInput(
        operation: "perplexity",
        reason: "\(tokens.count) tokens hold no whole window of \(context) for second-half scoring")
    }
    let first = context / 2
    let vocabulary = model.configuration.vocabularySize
    var total: Double = 0
    var scored = 0
    for index in 0..<windows {
      var window = Array(tokens[(index * context)..<((index + 1) * context)])
      if let firstToken { window[0] = firstToken }
      let logits = try model.logits(tokens: window)
      logits.elements.withUnsafeBufferPointer { values in
        for position in first..<(context - 1) {
          let row = UnsafeBufferPointer(rebasing: values[(position * vocabulary)..<((position + 1) * vocabulary)])
          total += negativeLogLikelihood(row, target: window[position + 1])
          scored += 1
        }
      }
      windowDone(index + 1)
    }
    let mean = total / Double(scored)
    return PerplexityResult(
      perplexity: exp(mean), meanNegativeLogLikelihood: mean, scoredTokens: scored, windows: windows)
  }

  /// `-log softmax(logits)[target]`, accumulated in Double.
  static func negativeLogLikelihood(_ logits: UnsafeBufferPointer<Float>, target: Int) -> Double {
    var largest = -Float.infinity
    for value in logits { largest = max(largest, value) }
    var sum: Double = 0
    for value in logits { sum += exp(Double(value - largest)) }
    return log(sum) - Double(logits[target] - largest)
  }
}
