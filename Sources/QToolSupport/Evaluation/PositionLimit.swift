import Foundation
import QEngine

#if canImport(Glibc)
  import Glibc
#endif

/// A size given on the command line that the model cannot take.
///
/// More positions than the model was trained for, or more memory than the machine has: a usage
/// error (exit status 64).
public struct OptionLimitError: Error, CustomStringConvertible, Sendable {
  public var option: String
  public var value: Int
  public var reason: String

  public var description: String { "'\(option) \(value)' \(reason)" }
}

/// Checks a number of positions asked for (`--context`, `--max-tokens`) against the model
/// before anything of that size is allocated: the config's `max_position_embeddings` where it
/// has one, and an estimate of the memory the run needs against the machine's.
public enum PositionLimit {
  /// What the positions are used for, which sets how much memory each one costs.
  public enum Use: Sendable {
    /// One forward pass over a window (perplexity, hidden states).
    case inference
    /// A key/value cache of that many positions.
    case generation
    /// A forward and backward pass, every layer's activations kept.
    case training
  }

  /// Refuses `positions` for `model` (found at `location`) when they exceed the trained
  /// context or the memory they would need exceeds the machine's.
  ///
  /// - Parameters:
  ///   - option: The command-line option, as the user gave it.
  ///   - value: The option's value.
  ///   - extra: Positions beyond the option's value (a prompt's tokens), named in the message.
  ///   - model: The language model's shape and trained context.
  ///   - location: The model's path, for the message.
  ///   - use: What the positions are for, which sets their memory.
  /// - Throws: `OptionLimitError`, one line naming the option, the model and the limit.
  public static func check(
    option: String, value: Int, extra: (count: Int, what: String)? = nil, model: DecoderConfiguration,
    location: String, use: Use
  ) throws(OptionLimitError) {
    let (positions, overflow) = value.addingReportingOverflow(extra?.count ?? 0)
    let with = extra.map { "with the \($0.count) tokens of the \($0.what) " } ?? ""
    if let limit = model.maxPositionEmbeddings, overflow || positions > limit {
      throw OptionLimitError(
        option: option, value: value,
        reason: "\(with)exceeds the \(limit) positions of \(location) (max_position_embeddings in its config)")
    }
    let needed = overflow ? .infinity : estimatedBytes(positions: positions, model: model, use: use)
    let available = physicalMemory
    if available > 0, needed > available {
      throw OptionLimitError(
        option: option, value: value,
        reason: "\(with)needs about \(format(needed)) of memory for \(location), more than the \(format(available)) of this machine")
    }
  }

  /// A lower bound on the bytes a run over `positions` positions holds at once (Float32).
  public static func estimatedBytes(positions: Int, model: DecoderConfiguration, use: Use) -> Double {
    let n = Double(positions)
    let hidden = Double(model.hiddenSize)
    let heads = Double(model.headCount)
    let keyValueWidth = Double(model.keyValueHeadCount * model.headDimension)
    let layers = Double(model.layerCount)
    let perPosition = hidden * 4 + Double(model.intermediateSize) * 3 + keyValueWidth * 2
    let logits = n * Double(model.vocabularySize)
    switch use {
    case .inference:
      // One layer's attention scores and activations, the logits.
      return 4 * (heads * n * n + n * perPosition + logits)
    case .generation:
      // The key/value cache of every layer, one row of scores per head.
      return 4 * (layers * 2 * keyValueWidth * n + heads * n + perPosition + Double(model.vocabularySize))
    case .training:
      // Every layer's scores and probabilities and activations kept for the backward pass.
      return 4 * (layers * (2 * heads * n * n + n * perPosition) + 2 * logits)
    }
  }

  /// The machine's physical memory in bytes (0 when unknown).
  static var physicalMemory: Double {
    let pages = sysconf(Int32(_SC_PHYS_PAGES))
    let size = sysconf(Int32(_SC_PAGESIZE))
    return pages > 0 && size > 0 ? Double(pages) * Double(size) : 0
  }

  static func format(_ bytes: Double) -> String {
    if !bytes.isFinite { return "more bytes than can be counted" }
    let units = ["bytes", "KB", "MB", "GB", "TB", "PB", "EB"]
    var value = bytes
    var unit = 0
    while value >= 1000, unit < units.count - 1 {
      value /= 1000
      unit += 1
    }
    return unit == 0 ? "\(Int(value)) bytes" : "\(String(format: "%.1f", value)) \(units[unit])"
  }
}
