import Foundation

/// What `lora-rebase --fresh` wrote (`Formats/lora-rebase-report.md`).
public struct LoraFreshReport: Sendable, Codable, Equatable {
  public var fresh = true
  public var newBase: String
  public var adapter: String
  public var output: String
  public var rank: Int
  public var alpha: Double
  public var seed: UInt64
  /// Module paths (`self_attn.q_proj`) on each layer.
  public var modules: [String]
  public var layers: Int

  public init(newBase: String, adapterPath: String, output: String, fresh adapter: PEFTAdapter, seed: UInt64) {
    self.newBase = newBase
    self.adapter = adapterPath
    self.output = output
    rank = adapter.rank
    alpha = adapter.alpha
    self.seed = seed
    modules = Set(adapter.modules.keys.map(\.module)).sorted()
    layers = Set(adapter.modules.keys.map(\.layer)).count
  }

  public func json() throws -> String {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
    return String(decoding: try encoder.encode(self), as: UTF8.self) + "\n"
  }

  public func table() -> String {
    "lora-rebase: fresh adapter shaped like \(adapter) (r \(rank), alpha \(formatFixed(alpha, 1)), seed \(seed)); nothing moved\n"
      + "  new base: \(newBase)\n  output:   \(output)\n"
      + "  modules:  \(modules.joined(separator: ", ")) on \(layers) layers\n"
  }
}
