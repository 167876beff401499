import QFormats

/// Everything `qdiff` finds between two checkpoints; its coded form is the JSON output.
///
/// Field names are part of the tool's interface (see `Formats/qdiff-output.md`): add fields,
/// never rename or remove them.
public struct DiffReport: Codable, Sendable {
  public var version = 1
  public var old: SideEntry
  public var new: SideEntry
  /// Relative L2 error at or below which a tensor counts as equal; 0 asks for identical bytes.
  public var tolerance: Double
  /// Whether the checkpoints are the same within tolerance (exit status 0): every tensor
  /// `equal` and, without a filter, no config change.
  public var same: Bool
  public var config: [ConfigChange]
  public var layerMoves: [DiffMatching.LayerMove]
  public var summary: DiffSummary
  public var components: [GroupEntry]
  public var layers: [GroupEntry]
  public var tensors: [TensorDiff]
  /// CKA between layers and the layer and head mappings, when asked for.
  public var layerSimilarity: LayerSimilarity? = nil
  /// Both models run on a text, with `--data`.
  public var data: DataComparisonResult? = nil
  /// Both models' vision towers run on images, with `--images`.
  public var images: ImageComparisonResult? = nil

  enum CodingKeys: String, CodingKey {
    case version, old, new, tolerance, same, config
    case layerMoves = "layer_moves"
    case summary, components, layers, tensors
    case layerSimilarity = "layer_similarity"
    case data, images
  }

  /// Adds a data comparison; the checkpoints stay `same` only if the models predict the same.
  public mutating func attach(_ comparison: DataComparisonResult) {
    data = comparison
    same = same && comparison.same
  }

  /// Adds an image comparison; the checkpoints stay `same` only if the image features agree
  /// within tolerance.
  public mutating func attach(_ comparison: ImageComparisonResult) {
    images = comparison
    same = same && comparison.same
  }
}

/// One input: what it is and how large.
public struct SideEntry: Codable, Sendable {
  public var path: String
  public var format: String
  /// Whether it is a qpack (its tensors are dequantized for the comparison).
  public var pack: Bool
  public var tensors: Int
  public var parameters: Int
  /// Bytes stored: for a pack, the bytes of the companions.
  public var bytes: Int
  public var bitsPerWeight: Double?

  enum CodingKeys: String, CodingKey {
    case path, format, pack, tensors, parameters, bytes
    case bitsPerWeight = "bits_per_weight"
  }
}

/// How a tensor of one checkpoint relates to the other.
public enum TensorStatus: String, Codable, Sendable, CaseIterable, Comparable {
  case removed
  case added
  case renamed
  case shapeChanged = "shape-changed"
  case dtypeChanged = "dtype-changed"
  case changed
  case equal

  public static func < (a: TensorStatus, b: TensorStatus) -> Bool {
    allCases.firstIndex(of: a) ?? 0 < allCases.firstIndex(of: b) ?? 0
  }
}

/// One tensor's line: a pair, or a tensor present on one side only.
public struct TensorDiff: Codable, Sendable {
  /// The new name, or the old one for a removed tensor.
  public var name: String
  public var status: TensorStatus
  /// For a renamed tensor, why it counts as the same: `prefix` or `layer-renumbering`.
  public var renamedBy: String?
  public var oldName: String?
  public var newName: String?
  public var oldDType: String?
  public var newDType: String?
  public var oldShape: [Int]?
  public var newShape: [Int]?
  public var parameters: Int
  public var component: String
  /// `stack.index` of a per-layer tensor (`model.layers.3`).
  public var layer: String?
  /// Whether the values agree within tolerance; absent when they were not compared.
  public var withinTolerance: Bool?
  public var bitIdentical: Bool?
  public var relativeL2: Double?
  public var cosine: Double?
  public var maxAbsDiff: Double?
  public var snrDB: Double?
  /// Element pairs left out of the metrics because either is NaN or infinite.
  public var nonFinite: Int?
  /// 8 x stored bytes / parameters on the new side, when it is a pack.
  public var bitsPerWeight: Double?
  /// The same on the old side, when it is a pack.
  public var oldBitsPerWeight: Double?

  enum CodingKeys: String, CodingKey {
    case name, status
    case renamedBy = "renamed_by"
    case oldName = "old_name"
    case newName = "new_name"
    case oldDType = "old_dtype"
    case newDType = "new_dtype"
    case oldShape = "old_shape"
    case newShape = "new_shape"
    case parameters, component, layer
    case withinTolerance = "within_tolerance"
    case bitIdentical = "bit_identical"
    case relativeL2 = "relative_l2"
    case cosine
    case maxAbsDiff = "max_abs_diff"
    case snrDB = "snr_db"
    case nonFinite = "non_finite"
    case bitsPerWeight = "bits_per_weight"
    case oldBitsPerWeight = "old_bits_per_weight"
  }
}

/// Counts by status and the error over every compared element.
public struct DiffSummary: Codable, Sendable {
  public var counts: [String: Int]
  /// Tensors whose values were compared.
  public var compared: Int
  /// Compared tensors outside tolerance.
  public var differing: Int
  /// sqrt(sum ||a - b||^2 / sum ||a||^2) over the compared tensors.
  public var relativeL2: Double?
  public var maxAbsDiff: Double?
  public var snrDB: Double?

  enum CodingKeys: String, CodingKey {
    case counts, compared, differing
    case relativeL2 = "relative_l2"
    case maxAbsDiff = "max_abs_diff"
    case snrDB = "snr_db"
  }
}

/// Totals of the compared tensors of one component or one layer.
public struct GroupEntry: Codable, Sendable {
  /// The component (`language-model`) or the layer (`model.layers.3`).
  public var name: String
  public var tensors: Int
  public var differing: Int
  public var parameters: Int
  public var relativeL2: Double?
  public var cosine: Double?
  public var maxAbsDiff: Double?
  public var snrDB: Double?

  enum CodingKeys: String, CodingKey {
    case name, tensors, differing, parameters
    case relativeL2 = "relative_l2"
    case cosine
    case maxAbsDiff = "max_abs_diff"
    case snrDB = "snr_db"
  }
}

extension KeyedEncodingContainer {
  /// A metric: absent when `nil`, `null` when NaN or infinite, which JSON cannot spell (a
  /// tensor with a non-finite pair has NaN metrics; see `DifferenceSums`).
  mutating func encodeMetric(_ value: Double?, forKey key: Key) throws {
    guard let value else { return }
    if value.isFinite { try encode(value, forKey: key) } else { try encodeNil(forKey: key) }
  }
}

extension TensorDiff {
  public func encode(to encoder: any Encoder) throws {
    var c = encoder.container(keyedBy: CodingKeys.self)
    try c.encode(name, forKey: .name)
    try c.encode(status, forKey: .status)
    try c.encodeIfPresent(renamedBy, forKey: .renamedBy)
    try c.encodeIfPresent(oldName, forKey: .oldName)
    try c.encodeIfPresent(newName, forKey: .newName)
    try c.encodeIfPresent(oldDType, forKey: .oldDType)
    try c.encodeIfPresent(newDType, forKey: .newDType)
    try c.encodeIfPresent(oldShape, forKey: .oldShape)
    try c.encodeIfPresent(newShape, forKey: .newShape)
    try c.encode(parameters, forKey: .parameters)
    try c.encode(component, forKey: .component)
    try c.encodeIfPresent(layer, forKey: .layer)
    try c.encodeIfPresent(withinTolerance, forKey: .withinTolerance)
    try c.encodeIfPresent(bitIdentical, forKey: .bitIdentical)
    try c.encodeMetric(relativeL2, forKey: .relativeL2)
    try c.encodeMetric(cosine, forKey: .cosine)
    try c.encodeMetric(maxAbsDiff, forKey: .maxAbsDiff)
    try c.encodeMetric(snrDB, forKey: .snrDB)
    try c.encodeIfPresent(nonFinite, forKey: .nonFinite)
    try c.encodeIfPresent(bitsPerWeight, forKey: .bitsPerWeight)
    try c.encodeIfPresent(oldBitsPerWeight, forKey: .oldBitsPerWeight)
  }
}

extension DiffSummary {
  public func encode(to encoder: any Encoder) throws {
    var c = encoder.container(keyedBy: CodingKeys.self)
    try c.encode(counts, forKey: .counts)
    try c.encode(compared, forKey: .compared)
    try c.encode(differing, forKey: .differing)
    try c.encodeMetric(relativeL2, forKey: .relativeL2)
    try c.encodeMetric(maxAbsDiff, forKey: .maxAbsDiff)
    try c.encodeMetric(snrDB, forKey: .snrDB)
  }
}

extension GroupEntry {
  public func encode(to encoder: any Encoder) throws {
    var c = encoder.container(keyedBy: CodingKeys.self)
    try c.encode(name, forKey: .name)
    try c.encode(tensors, forKey: .tensors)
    try c.encode(differing, forKey: .differing)
    try c.encode(parameters, forKey: .parameters)
    try c.encodeMetric(relativeL2, forKey: .relativeL2)
    try c.encodeMetric(cosine, forKey: .cosine)
    try c.encodeMetric(maxAbsDiff, forKey: .maxAbsDiff)
    try c.encodeMetric(snrDB, forKey: .snrDB)
  }
}
