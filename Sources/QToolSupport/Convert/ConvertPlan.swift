import QCompute
import QFormats

/// The main quantization settings, from `--bits`, `--group-size` and `--method`.
public struct ConvertSettings: Sendable, Hashable {
  public enum Method: String, Sendable, CaseIterable {
    case rtn, clip, hqq, bilevel
  }

  public var bits: Int
  public var groupSize: GroupSize
  public var method: Method
  public var scaleDType: DType

  public init(bits: Int = 4, groupSize: GroupSize = .elements(64), method: Method = .rtn, scaleDType: DType = .f16)
    throws(ConvertError)
  {
    // The widths some layout stores; each layout refuses those it cannot hold (a qpack 5 and 6).
    guard BitPacking.streamBits.contains(bits) else {
      throw .invalidOption(option: "--bits", reason: "\(bits) is not one of 2, 3, 4, 5, 6, 8")
    }
    if method == .bilevel, bits != 2, bits != 4 {
      throw .invalidOption(option: "--method", reason: "bilevel takes 2 bits (w2g16g16) or 4 bits (w4g32g128), not \(bits)")
    }
    self.bits = bits
    self.groupSize = groupSize
    self.method = method
    self.scaleDType = scaleDType
  }

  /// The spec for ordinary weights.
  public var mainSpec: PackSpec {
    switch method {
    case .bilevel: .speedQ(bits: bits, scaleDType: scaleDType)
    case .rtn: PackSpec(bits: bits, groupSize: groupSize, grid: .affine, method: .rtn, scaleDType: scaleDType)
    case .clip: PackSpec(bits: bits, groupSize: groupSize, grid: .affine, method: .clip, scaleDType: scaleDType)
    case .hqq: PackSpec(bits: bits, groupSize: groupSize, grid: .affine, method: .hqq, scaleDType: scaleDType)
    }
  }

  /// The spec for token embeddings and lm_head: SPEED-Q's policy under bilevel.
  public var embeddingSpec: PackSpec {
    method == .bilevel ? .speedQEmbedding(scaleDType: scaleDType) : mainSpec
  }

  /// The spec a rule's action asks for, filling what it leaves open from these settings.
  func spec(for action: RuleAction) -> PackSpec? {
    switch action {
    case .keep, .ggufType: return nil
    case .bilevel(let bits): return .speedQ(bits: bits, scaleDType: scaleDType)
    case .quantize(let bits, let group, let grid, let method):
      let chosenGrid = grid ?? .affine
      let inherited = PackMethod(rawValue: self.method.rawValue) ?? .rtn
      let chosenMethod = method ?? (chosenGrid == .symmetric ? .rtn : inherited)
      return PackSpec(
        bits: bits, groupSize: group ?? groupSize, grid: chosenGrid, method: chosenMethod,
        scaleDType: scaleDType)
    }
  }
}

/// What happens to one tensor.
public struct PlanEntry: Sendable {
  public var info: TensorInfo
  /// `nil` when the tensor is kept as stored.
  public var spec: PackSpec?
  public var description: PackDescription?
  /// Why: the rule that matched, or the default that applied.
  public var reason: String
  /// The tensors written for it: itself when kept, its companions when packed.
  public var outputs: [TensorInfo]
  /// Codes a calibrated method (GPTQ, a Gram clip search) already chose; stored as they are
  /// instead of quantizing the weight again.
  public var precomputed: QuantizedMatrix? = nil
  /// New values a calibrated stage chose for the tensor (row-major, its shape), read in place of
  /// the stored ones and then treated as the entry says: kept in the tensor's dtype, or quantized.
  public var replacement: [Float]? = nil

  public var bytesBefore: Int { info.byteCount }
  public var bytesAfter: Int { outputs.reduce(0) { $0 + $1.byteCount } }
}

/// The per-tensor plan of a conversion, computed from names, dtypes and shapes alone.
public struct ConvertPlan: Sendable {
  public var entries: [PlanEntry]
  public var settings: ConvertSettings
  /// The input, for messages.
  public var location: String

  /// Decides every tensor: rules first (first match wins), then the defaults.
  ///
  /// - Throws: `ConvertError.ruleCannotApply` when a matching rule asks for a spec that does
  ///   not fit the tensor.
  public init(
    tensors: [TensorInfo], architecture: ArchitectureSummary, settings: ConvertSettings,
    rules: [ConvertRule], location: String
  ) throws(ConvertError) {
    self.settings = settings
    self.location = location
    entries = []
    for info in tensors {
      entries.append(try Self.decide(info, architecture: architecture, settings: settings, rules: rules, location: location))
    }
  }

  /// Marks `names` as kept as stored, after the writer kept them (NaN or infinity in them), so
  /// the config's quantization block says what the pack holds.
  public mutating func keepAsStored(_ names: [String], reason: String) {
    let kept = Set(names)
    for index in entries.indices where kept.contains(entries[index].info.name) {
      entries[index] = Self.keep(entries[index].info, reason)
    }
  }

  static func keep(_ info: TensorInfo, _ reason: String) -> PlanEntry {
    PlanEntry(info: info, spec: nil, description: nil, reason: reason, outputs: [info])
  }

  static func decide(
    _ info: TensorInfo, architecture: ArchitectureSummary, settings: ConvertSettings, rules: [ConvertRule],
    location: String
  ) throws(ConvertError) -> PlanEntry {
    if !info.dtype.isFloatingPoint { return keep(info, "not floating point") }
    if info.shape.count < 2 { return keep(info, "\(info.shape.count)-D") }
    if let rule = rules.first(where: { info.name.contains($0.pattern) }) {
      if case .ggufType(let type) = rule.action {
        throw .ruleCannotApply(rule: rule.text, tensor: info.name, reason: "\(type.name) is a GGUF type, which only '--layout gguf' stores")
      }
      guard let spec = settings.spec(for: rule.action) else { return keep(info, "rule '\(rule.text)'") }
      do {
        let (description, outputs) = try PackEncoder.companions(of: info, spec: spec, location: location)
        return PlanEntry(info: info, spec: spec, description: description, reason: "rule '\(rule.text)'", outputs: outputs)
      } catch {
        throw .ruleCannotApply(rule: rule.text, tensor: info.name, reason: Self.reason(of: error))
      }
    }
    let role = architecture.role(of: info.name)
    let component = architecture.component(of: info.name)
    if info.name.hasSuffix(".bias") || info.name.hasSuffix("_bias") { return keep(info, "bias") }
    if role == .norm || info.name.contains("norm") { return keep(info, "norm") }
    if component == .projector { return keep(info, "projector") }
    if role == .positionEmbedding { return keep(info, "position embedding") }
    let isEmbedding = role == .tokenEmbedding || role == .lmHead
    let spec = isEmbedding ? settings.embeddingSpec : settings.mainSpec
    do {
      let (description, outputs) = try PackEncoder.companions(of: info, spec: spec, location: location)
      return PlanEntry(
        info: info, spec: spec, description: description, reason: isEmbedding ? "embedding policy" : "default",
        outputs: outputs)
    } catch {
      return keep(info, Self.reason(of: error))
    }
  }

  static func reason(of error: PackError) -> String {
    if case .cannotPack(_, _, let reason) = error { return reason }
    return error.description
  }

  /// The `__metadata__` of the pack: version, one description per packed tensor and a checksum
  /// per kept tensor (checksums as placeholders).
  public var metadata: [String: String] {
    var out = ["format": "pt", PackDescription.versionKey: PackDescription.version]
    // Checksums are fixed-width, so placeholders make the header exactly as long as the real one.
    for entry in entries {
      if var description = entry.description {
        description.checksum = CRC32C.placeholder
        out[PackDescription.keyPrefix + entry.info.name] = description.jsonString()
      } else {
        out[PackDescription.checksumKeyPrefix + entry.info.name] = CRC32C.placeholder
      }
    }
    return out
  }

  /// Every tensor the pack holds, in writing order.
  public var outputTensors: [TensorInfo] { entries.flatMap(\.outputs) }

  public var bytesBefore: Int { entries.reduce(0) { $0 + $1.bytesBefore } }
  public var bytesAfter: Int { entries.reduce(0) { $0 + $1.bytesAfter } }
  public var parameters: Int { entries.reduce(0) { $0 + $1.info.elementCount } }

  /// 8 x bytes after / parameters, over the whole checkpoint.
  public var bitsPerWeight: Double {
    parameters == 0 ? 0 : 8 * Double(bytesAfter) / Double(parameters)
  }

  /// The exact size of the pack file: header plus data.
  public func fileSize() throws -> Int {
    let (header, _) = try SafetensorsWriter.header(plan: outputTensors, metadata: metadata, order: .asGiven)
    return header.count + bytesAfter
  }
}
