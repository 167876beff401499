import QCompute
import QFormats

/// What `qinspect` is asked to compute.
public struct InspectionOptions: @unchecked Sendable {
  /// Read every tensor and compute its statistics.
  public var statistics: Bool
  /// Keep only tensors whose name matches.
  public var filter: Regex<AnyRegexOutput>?

  public init(statistics: Bool = false, filter: Regex<AnyRegexOutput>? = nil) {
    self.statistics = statistics
    self.filter = filter
  }
}

extension InspectionReport {
  /// Builds the report of one checkpoint; reads tensor data only for statistics.
  public static func build(for checkpoint: Checkpoint, options: InspectionOptions) throws
    -> InspectionReport
  {
    // A qpack lists its original tensors, dequantized on read; so does an MLX-quantized folder,
    // whose packed words, scales and biases are one weight of its real shape.
    let pack =
      PackedCheckpoint.isPack(checkpoint.source) ? try PackedCheckpoint(wrapping: checkpoint.source) : nil
    let mlx =
      pack == nil && DequantizedMLX.isQuantized(checkpoint.source, configData: checkpoint.configData)
      ? try DequantizedMLX(wrapping: checkpoint.source, configData: checkpoint.configData, location: checkpoint.location)
      : nil
    let source: any TensorSource = pack ?? mlx ?? checkpoint.source
    let stored = Dictionary(checkpoint.source.tensors.map { ($0.name, $0.byteCount) }, uniquingKeysWith: { a, _ in a })
    let config = try checkpoint.configData.map {
      try ModelConfig(data: $0, location: checkpoint.configPath ?? checkpoint.location)
    }
    let architecture = ArchitectureSummary.recognise(config: config, tensors: source.tensors)

    var selected = source.tensors
    if let filter = options.filter {
      selected = selected.filter { $0.name.contains(filter) }
    }

    var tensors: [TensorEntry] = []
    tensors.reserveCapacity(selected.count)
    for info in selected {
      var entry = TensorEntry(
        name: info.name, dtype: info.dtype.rawValue, shape: info.shape,
        parameters: info.elementCount, bytes: info.byteCount,
        component: architecture.component(of: info.name).rawValue)
      if let description = pack?.packDescriptions[info.name] {
        let stored =
          pack?.storedByteCounts[info.name] ?? description.companions(of: info.name).reduce(0) { $0 + $1.byteCount }
        entry.bytes = stored
        entry.bits = description.bits
        entry.groupSize = description.groupSize
        entry.grid = description.grid.rawValue
        entry.method = description.method.rawValue
        entry.bitsPerWeight = info.elementCount > 0 ? 8 * Double(stored) / Double(info.elementCount) : 0
      }
      if let layer = mlx?.layers[info.name] {
        let bytes = ["weight", "scales", "biases"].reduce(0) { $0 + (stored[layer.module + "." + $1] ?? 0) }
        entry.bytes = bytes
        entry.bits = layer.bits
        entry.groupSize = layer.groupSize
        entry.grid = "affine"
        entry.bitsPerWeight = info.elementCount > 0 ? 8 * Double(bytes) / Double(info.elementCount) : 0
      }
      if options.statistics {
        entry.stats = StatsEntry(try source.statistics(of: info))
      }
      tensors.append(entry)
    }

    var skipped: [SkippedEntry] = []
    if let hdf5 = source as? HDF5File {
      skipped = hdf5.skipped.map { SkippedEntry(name: $0.name, reason: $0.reason) }
    }
    if let gguf = source as? GGUFFile {
      // Block-quantized tensors are listed with their ggml type and stored bytes; statistics
      // are taken over their dequantized values where the type can be read.
      for q in gguf.quantizedTensors where options.filter.map({ q.name.contains($0) }) ?? true {
        var entry = TensorEntry(
          name: q.name, dtype: q.type.name, shape: q.shape,
          parameters: q.shape.reduce(1, *), bytes: q.byteCount,
          component: architecture.component(of: q.name).rawValue)
        if options.statistics, GGUFBlocks.decodableTypes.contains(q.type) {
          let values = try gguf.withRawBytes(of: q.name) { try GGUFBlocks.dequantize($0, type: q.type) }
          entry.stats = StatsEntry(values.withUnsafeBufferPointer { TensorStatistics.compute($0) })
        }
        tensors.append(entry)
      }
    }

    let parameters = tensors.reduce(0) { $0 + $1.parameters }
    let bytes = tensors.reduce(0) { $0 + $1.bytes }
    let totals = Totals(
      tensors: tensors.count, parameters: parameters, bytes: bytes,
      bitsPerWeight: parameters > 0 ? 8 * Double(bytes) / Double(parameters) : nil)

    return InspectionReport(
      path: checkpoint.location, format: checkpoint.format.rawValue, metadata: source.metadata,
      architecture: ArchitectureEntry(architecture),
      totals: totals, components: componentTotals(tensors), layerPatterns: patterns(tensors),
      tensors: tensors, skipped: skipped, perplexity: nil, generation: nil)
  }

  private static func componentTotals(_ tensors: [TensorEntry]) -> [ComponentEntry] {
    var order: [String] = []
    var totals: [String: ComponentEntry] = [:]
    for t in tensors {
      if totals[t.component] == nil {
        order.append(t.component)
        totals[t.component] = ComponentEntry(
          component: t.component, tensors: 0, parameters: 0, bytes: 0)
      }
      totals[t.component]?.tensors += 1
      totals[t.component]?.parameters += t.parameters
      totals[t.component]?.bytes += t.bytes
    }
    return order.compactMap { totals[$0] }
  }

  private static func patterns(_ tensors: [TensorEntry]) -> [PatternEntry] {
    let byName = Dictionary(tensors.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
    return LayerPattern.collapse(tensors.map(\.name)).map { group in
      let members = group.names.compactMap { byName[$0] }
      let dtypes = Set(members.map(\.dtype))
      let shapes = Set(members.map(\.shape))
      return PatternEntry(
        pattern: group.pattern, count: group.count,
        dtype: dtypes.count == 1 ? dtypes.first : nil,
        shape: shapes.count == 1 ? shapes.first : nil,
        parameters: members.reduce(0) { $0 + $1.parameters },
        bytes: members.reduce(0) { $0 + $1.bytes })
    }
  }
}

extension StatsEntry {
  init(_ s: TensorStatistics) {
    self.init(
      count: s.count, min: s.min.map(Double.init), max: s.max.map(Double.init), mean: s.mean,
      std: s.std, absmax: s.absMax.map(Double.init), zeroFraction: s.zeroFraction,
      nan: s.nanCount, inf: s.infCount)
  }
}

extension ArchitectureEntry {
  /// `nil` when neither the config nor the tensor names were recognised.
  init?(_ summary: ArchitectureSummary) {
    guard summary.family != .unknown else { return nil }
    var parameters: [String: Int] = [:]
    func add(_ prefix: String, _ h: HyperParameters?) {
      guard let h else { return }
      let pairs: [(String, Int?)] = [
        ("hidden_size", h.hiddenSize), ("num_hidden_layers", h.layerCount),
        ("vocab_size", h.vocabSize), ("intermediate_size", h.intermediateSize),
        ("num_attention_heads", h.attentionHeads), ("num_key_value_heads", h.keyValueHeads),
        ("head_dim", h.headDim),
      ]
      for (key, value) in pairs { if let value { parameters[prefix + key] = value } }
    }
    var details: [String: String] = ["source": summary.usedConfig ? "config" : "tensor names"]
    if summary.kind == .visionLanguage {
      add("text.", summary.language)
      add("vision.", summary.vision)
      if let f = summary.languageFamily { details["language_family"] = f.rawValue }
      if let f = summary.visionFamily { details["vision_family"] = f.rawValue }
    } else {
      add("", summary.hyperParameters)
    }
    self.init(
      family: summary.family.rawValue, kind: summary.kind.rawValue, parameters: parameters,
      details: details)
  }
}
