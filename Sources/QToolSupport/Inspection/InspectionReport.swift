import QCompute
import QFormats

/// Everything `qinspect` reports about one input; its coded form is the JSON output.
///
/// Field names are part of the tools' interface (see `Formats/qinspect-output.md`): add fields,
/// never rename or remove them.
public struct InspectionReport: Codable, Sendable {
  public var path: String
  public var format: String
  public var metadata: [String: String]
  public var architecture: ArchitectureEntry?
  public var totals: Totals
  public var components: [ComponentEntry]
  public var layerPatterns: [PatternEntry]
  public var tensors: [TensorEntry]
  /// Objects in the file that are not tensors we can read (HDF5 string datasets, for instance).
  public var skipped: [SkippedEntry]
  /// With `--perplexity`: the language model's perplexity on a text.
  public var perplexity: ModelEvaluation.Perplexity?
  /// With `--generate`: a greedy continuation of a prompt.
  public var generation: ModelEvaluation.Generation?

  enum CodingKeys: String, CodingKey {
    case path, format, metadata, architecture, totals, components
    case layerPatterns = "layer_patterns"
    case tensors, skipped, perplexity, generation
  }
}

public struct Totals: Codable, Sendable {
  public var tensors: Int
  public var parameters: Int
  public var bytes: Int
  /// 8 x bytes / parameters over the whole checkpoint.
  public var bitsPerWeight: Double?

  enum CodingKeys: String, CodingKey {
    case tensors, parameters, bytes
    case bitsPerWeight = "bits_per_weight"
  }
}

public struct TensorEntry: Codable, Sendable {
  public var name: String
  public var dtype: String
  public var shape: [Int]
  public var parameters: Int
  public var bytes: Int
  public var component: String
  public var stats: StatsEntry?
  /// For a tensor of a qpack: its code width, group, grid, method and bits per weight.
  public var bits: Int?
  public var groupSize: Int?
  public var grid: String?
  public var method: String?
  public var bitsPerWeight: Double?

  enum CodingKeys: String, CodingKey {
    case name, dtype, shape, parameters, bytes, component, stats, bits
    case groupSize = "group_size"
    case grid, method
    case bitsPerWeight = "bits_per_weight"
  }
}

public struct StatsEntry: Codable, Sendable {
  /// Elements examined.
  public var count: Int
  /// Over the finite elements; absent when there are none.
  public var min: Double?
  public var max: Double?
  public var mean: Double?
  public var std: Double?
  public var absmax: Double?
  /// Share of elements equal to zero (either sign), over all elements.
  public var zeroFraction: Double?
  public var nan: Int
  public var inf: Int

  enum CodingKeys: String, CodingKey {
    case count, min, max, mean, std, absmax
    case zeroFraction = "zero_fraction"
    case nan, inf
  }
}

public struct ComponentEntry: Codable, Sendable {
  public var component: String
  public var tensors: Int
  public var parameters: Int
  public var bytes: Int
}

public struct PatternEntry: Codable, Sendable {
  /// The name with every layer index replaced by `#`.
  public var pattern: String
  /// How many tensors share the pattern.
  public var count: Int
  /// The dtype and shape when all members agree, else absent.
  public var dtype: String?
  public var shape: [Int]?
  public var parameters: Int
  public var bytes: Int
}

public struct SkippedEntry: Codable, Sendable {
  public var name: String
  public var reason: String
}

public struct ArchitectureEntry: Codable, Sendable {
  public var family: String
  public var kind: String
  /// Hyper-parameters by their config.json names (`hidden_size`, `num_hidden_layers`, ...).
  public var parameters: [String: Int]
  public var details: [String: String]
}
