import QCompute
import QFormats

/// What `qdiff` is asked to compare.
public struct DiffOptions: @unchecked Sendable {
  /// Relative L2 error at or below which a tensor counts as equal; 0 asks for identical bytes.
  public var tolerance: Double
  /// Keep only tensors whose old or new name matches.
  public var filter: Regex<AnyRegexOutput>?

  public init(tolerance: Double = 0, filter: Regex<AnyRegexOutput>? = nil) {
    self.tolerance = tolerance
    self.filter = filter
  }
}

/// One checkpoint opened for comparison: packs wrapped so they read as their original tensors,
/// GGUF blocks and MLX-quantized linears dequantized (`Checkpoint.dequantized`).
public struct DiffInput: Sendable {
  public var checkpoint: Checkpoint
  public var source: any TensorSource
  public var config: ModelConfig?
  public var architecture: ArchitectureSummary

  public init(_ checkpoint: Checkpoint) throws {
    let checkpoint = try checkpoint.dequantized()
    self.checkpoint = checkpoint
    source =
      PackedCheckpoint.isPack(checkpoint.source)
      ? try PackedCheckpoint(wrapping: checkpoint.source) : checkpoint.source
    config = try checkpoint.configData.map {
      try ModelConfig(data: $0, location: checkpoint.configPath ?? checkpoint.location)
    }
    architecture = ArchitectureSummary.recognise(config: config, tensors: source.tensors)
  }

  var pack: PackedCheckpoint? { source as? PackedCheckpoint }

  /// Stored bits per weight of a tensor of a pack, a GGUF or an MLX-quantized folder; `nil` for
  /// a checkpoint stored as it reads.
  func bitsPerWeight(_ info: TensorInfo) -> Double? {
    if let stored = (source as? DequantizingSource)?.storedByteCount(of: info.name) {
      return info.elementCount > 0 ? 8 * Double(stored) / Double(info.elementCount) : nil
    }
    guard let pack else { return nil }
    if let description = pack.packDescriptions[info.name] { return description.bitsPerWeight(name: info.name) }
    return Double(8 * info.dtype.byteSize)
  }

  func entry() -> SideEntry {
    let tensors = source.tensors
    let parameters = tensors.reduce(0) { $0 + $1.elementCount }
    let bytes = tensors.reduce(0) { total, info in
      if let description = pack?.packDescriptions[info.name] {
        return total + description.companions(of: info.name).reduce(0) { $0 + $1.byteCount }
      }
      if let stored = (source as? DequantizingSource)?.storedByteCount(of: info.name) {
        return total + stored
      }
      return total + info.byteCount
    }
    return SideEntry(
      path: checkpoint.location, format: checkpoint.format.rawValue, pack: pack != nil,
      tensors: tensors.count, parameters: parameters, bytes: bytes,
      bitsPerWeight: parameters > 0 ? 8 * Double(bytes) / Double(parameters) : nil)
  }
}

extension DiffReport {
  /// Compares two checkpoints: names, dtypes, shapes, values, config.
  ///
  /// Every tensor is read once for its content hash and, where it has a partner of the same
  /// element count and name, its metrics; renamed pairs are read again for theirs.
  /// - Throws: a read error of either checkpoint.
  public static func build(old: DiffInput, new: DiffInput, options: DiffOptions) throws -> DiffReport {
    func selected(_ tensors: [TensorInfo]) -> [TensorInfo] {
      guard let filter = options.filter else { return tensors }
      return tensors.filter { $0.name.contains(filter) }
    }
    let oldTensors = selected(old.source.tensors)
    let newTensors = selected(new.source.tensors)
    let newByName = Dictionary(newTensors.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
    let oldNames = Set(oldTensors.map(\.name))

    var outcomes: [String: TensorComparison.Outcome] = [:]
    var oldHashes: [String: UInt64] = [:]
    var newHashes: [String: UInt64] = [:]
    func key(_ a: String, _ b: String) -> String { a + "\u{0}" + b }
    for info in oldTensors {
      if let partner = newByName[info.name], partner.shape == info.shape {
        let outcome = try TensorComparison.compare(old: old.source, info, new: new.source, partner)
        outcomes[key(info.name, partner.name)] = outcome
        oldHashes[info.name] = outcome.oldHash
        newHashes[info.name] = outcome.newHash
      } else if DiffMatching.LayerPlace(info.name) != nil || newByName[info.name] == nil {
        oldHashes[info.name] = try TensorComparison.hash(of: info, in: old.source)
      }
    }
    for info in newTensors where newHashes[info.name] == nil {
      if DiffMatching.LayerPlace(info.name) != nil || !oldNames.contains(info.name) {
        newHashes[info.name] = try TensorComparison.hash(of: info, in: new.source)
      }
    }

    let matching = DiffMatching.match(
      old: oldTensors, new: newTensors, oldHashes: oldHashes, newHashes: newHashes)

    var entries: [TensorDiff] = []
    var all = DifferenceSums()
    var byComponent: [String: GroupTotals] = [:]
    var componentOrder: [String] = []
    var byLayer: [String: GroupTotals] = [:]
    var layerOrder: [String] = []
    for pair in matching.pairs {
      var entry = TensorDiff(
        name: pair.new.name, status: .equal,
        renamedBy: pair.reason == .sameName ? nil : pair.reason.rawValue,
        oldName: pair.old.name, newName: pair.new.name,
        oldDType: pair.old.dtype.rawValue, newDType: pair.new.dtype.rawValue,
        oldShape: pair.old.shape, newShape: pair.new.shape,
        parameters: pair.new.elementCount,
        component: new.architecture.component(of: pair.new.name).rawValue,
        layer: layerName(pair.new.name),
        bitsPerWeight: new.bitsPerWeight(pair.new), oldBitsPerWeight: old.bitsPerWeight(pair.old))
      if pair.old.shape != pair.new.shape {
        entry.status = pair.reason == .sameName ? .shapeChanged : .renamed
        entries.append(entry)
        continue
      }
      let outcome =
        try outcomes[key(pair.old.name, pair.new.name)]
        ?? TensorComparison.compare(old: old.source, pair.old, new: new.source, pair.new)
      // Bit-identical tensors differ by nothing, whatever NaN they hold.
      let sums = outcome.bitIdentical ? outcome.sums.finitePairsOnly : outcome.sums
      let exactOnly = options.tolerance == 0 && pair.old.dtype == pair.new.dtype
      let within =
        outcome.bitIdentical
        || (!exactOnly && sums.nonFinite == 0 && (sums.relativeL2.map { $0 <= options.tolerance } ?? false))
      entry.withinTolerance = within
      entry.bitIdentical = outcome.bitIdentical
      entry.relativeL2 = sums.relativeL2
      entry.cosine = sums.cosine
      entry.maxAbsDiff = sums.largestDifference
      entry.snrDB = sums.snrDecibels
      entry.nonFinite = outcome.sums.nonFinite
      entry.status =
        pair.reason != .sameName
        ? .renamed
        : pair.old.dtype != pair.new.dtype ? .dtypeChanged : within ? .equal : .changed
      entries.append(entry)

      all.merge(sums)
      if byComponent[entry.component] == nil { componentOrder.append(entry.component) }
      byComponent[entry.component, default: GroupTotals()].add(sums, within: within, parameters: entry.parameters)
      if let layer = entry.layer {
        if byLayer[layer] == nil { layerOrder.append(layer) }
        byLayer[layer, default: GroupTotals()].add(sums, within: within, parameters: entry.parameters)
      }
    }
    for info in matching.removed {
      entries.append(
        TensorDiff(
          name: info.name, status: .removed, oldName: info.name, oldDType: info.dtype.rawValue,
          oldShape: info.shape, parameters: info.elementCount,
          component: old.architecture.component(of: info.name).rawValue, layer: layerName(info.name),
          oldBitsPerWeight: old.bitsPerWeight(info)))
    }
    for info in matching.added {
      entries.append(
        TensorDiff(
          name: info.name, status: .added, newName: info.name, newDType: info.dtype.rawValue,
          newShape: info.shape, parameters: info.elementCount,
          component: new.architecture.component(of: info.name).rawValue, layer: layerName(info.name),
          bitsPerWeight: new.bitsPerWeight(info)))
    }

    let config = ConfigChange.changes(
      old: (old.config, old.architecture), new: (new.config, new.architecture))
    var counts: [String: Int] = [:]
    for status in TensorStatus.allCases { counts[status.rawValue] = 0 }
    for entry in entries { counts[entry.status.rawValue, default: 0] += 1 }
    let compared = entries.filter { $0.withinTolerance != nil }
    let differing = compared.filter { $0.withinTolerance == false }.count
    let summary = DiffSummary(
      counts: counts, compared: compared.count, differing: differing,
      relativeL2: compared.isEmpty ? nil : all.relativeL2,
      maxAbsDiff: compared.isEmpty ? nil : all.largestDifference,
      snrDB: all.snrDecibels)
    // A filter narrows the question to the tensors it selects.
    let same = (config.isEmpty || options.filter != nil) && entries.allSatisfy { $0.status == .equal }
    return DiffReport(
      old: old.entry(), new: new.entry(), tolerance: options.tolerance, same: same, config: config,
      layerMoves: matching.layerMoves, summary: summary,
      components: componentOrder.compactMap { name in byComponent[name].map { $0.entry(name) } },
      layers: layerOrder.compactMap { name in byLayer[name].map { $0.entry(name) } },
      tensors: entries)
  }

  /// `stack.index` for a per-layer name, `nil` otherwise.
  static func layerName(_ name: String) -> String? {
    guard let place = DiffMatching.LayerPlace(name) else { return nil }
    return place.stack.isEmpty ? String(place.index) : "\(place.stack).\(place.index)"
  }
}

/// Running totals of a component or a layer.
private struct GroupTotals {
  var sums = DifferenceSums()
  var tensors = 0
  var differing = 0
  var parameters = 0

  mutating func add(_ s: DifferenceSums, within: Bool, parameters p: Int) {
    sums.merge(s)
    tensors += 1
    if !within { differing += 1 }
    parameters += p
  }

  func entry(_ name: String) -> GroupEntry {
    GroupEntry(
      name: name, tensors: tensors, differing: differing, parameters: parameters,
      relativeL2: sums.relativeL2, cosine: sums.cosine, maxAbsDiff: sums.largestDifference,
      snrDB: sums.snrDecibels)
  }
}
