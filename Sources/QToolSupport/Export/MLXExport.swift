import Foundation
import QCompute
import QFormats

/// Writes a checkpoint in MLX's quantized layout, as `mlx_lm.convert -q` does, so `mlx_lm` loads it.
///
/// Every Linear or Embedding weight (a rank-2 floating-point `X.weight`) whose row length is a
/// multiple of the group size becomes `X.weight` (U32 `[out, in*bits/32]`), `X.scales` and
/// `X.biases` (`[out, in/g]` in the source dtype), quantized with `AffineQuantizer`, which matches
/// `mlx.core.quantize` bit for bit. Everything else is copied unchanged.
public enum MLXExport {
  /// The group sizes MLX's affine kernels accept.
  public static let supportedGroupSizes: Set<Int> = [32, 64, 128]
  /// The bit widths this export packs: MLX's, but 1 and 7.
  public static let supportedBits: Set<Int> = AffineQuantizer.supportedBits

  /// Quantization settings for one tensor.
  public typealias Settings = (bits: Int, groupSize: Int)

  /// How codes are found on MLX's grid.
  public enum Method: String, Sendable, CaseIterable {
    /// `mlx.core.quantize`'s own round to nearest, bit for bit.
    case rtn
    /// The per-group clip search with `mlx.core.quantize`'s grid inside (`MLXAffineGrid.clipSearch`).
    case clip
    /// Half-quadratic zero refinement (`HQQQuantizer`), restated on the stored grid.
    case hqq
  }

  /// Decides a block of whole rows on MLX's grid with `method`: the codes, and the scales and
  /// biases as MLX stores them in `scaleType` (rounded, in `QuantizedMatrix`'s f32).
  ///
  /// Round to nearest keeps `mlx.core.quantize`'s codes; the clip search and HQQ have their grids restated
  /// in bias form and rounded to `scaleType`, each code then the nearest under MLX's own
  /// dequantization (`MLXAffineGrid`), so what MLX reads back is what the method decided.
  public static func decide(
    _ block: UnsafeBufferPointer<Float>, rows: Int, columns: Int, bits: Int, groupSize: Int,
    method: Method, scaleType: DType
  ) throws -> QuantizedMatrix {
    let group = GroupSize.elements(groupSize)
    switch method {
    case .rtn:
      let decided = try AffineQuantizer.quantize(block, rows: rows, columns: columns, bits: bits, groupSize: group)
      return MLXAffineGrid.stored(decided, weights: block, scaleType: scaleType, keepCodes: true)
    case .clip:
      return try MLXAffineGrid.clipSearch(
        block, rows: rows, columns: columns, bits: bits, groupSize: groupSize, scaleType: scaleType)
    case .hqq:
      let decided = try HQQQuantizer.quantize(block, rows: rows, columns: columns, bits: bits, groupSize: group)
      return MLXAffineGrid.stored(decided, weights: block, scaleType: scaleType)
    }
  }

  /// Exports `source` into `outputFolder`: `model.safetensors` (or shards and their index),
  /// `model.safetensors.index.json`, `config.json` and the tokenizer and other side files from
  /// `sideFilesFrom`.
  ///
  /// Streams: each weight is read, quantized and written a block of rows at a time, its input
  /// pages dropped once read, so memory follows the block in hand; only the scales and biases
  /// (1/16 of an F16 model at g64) wait until their place in the file comes. The folder must
  /// exist; the caller makes it temporary and renames it when this returns.
  ///
  /// - Parameters:
  ///   - configData: the source config.json; the output config gets `quantization` and
  ///     `quantization_config` added.
  ///   - method: how codes are found (see `decide`).
  ///   - rules: per-tensor rules (first match wins): `keep`, or `BITS[gGROUP]` on MLX's grid;
  ///     recorded per module in config.json as mlx_lm reads them (`false` for a kept module).
  ///     `MLXLayout` refuses the rules this layout cannot hold before anything is read.
  ///   - overrides: per tensor name (`X.weight`): other settings, or `nil` to keep it
  ///     unquantized; wins over the rules.
  ///   - decided: codes a calibrated method (GPTQ) already decided on MLX's stored grid, by
  ///     tensor name (`X.weight`): written as they are, with their grid's scales and biases.
  ///   - maxShardBytes: split the weights into `model-0000i-of-0000n.safetensors` files of at
  ///     most this many bytes (a larger tensor alone in its file), as mlx_lm's `save` does.
  ///   - blockElements: about how many floats are read and quantized at a time.
  public static func exportMLX(
    source: any TensorSource, configData: Data?, sideFilesFrom folder: String?,
    to outputFolder: String, bits: Int, groupSize: Int, method: Method = .rtn,
    rules: [ConvertRule] = [], overrides: [String: Settings?] = [:], decided: [String: StoredCodes] = [:],
    maxShardBytes: Int? = nil, blockElements: Int = TensorRowBlocks.blockElements,
    progress: (ExportProgress) -> Void = { _ in }
  ) throws {
    let config = try configData.map { try decodeConfig($0, location: source.location) }
    let tied = config?["tie_word_embeddings"]?.boolValue ?? false
    let plan = try makePlan(
      source: source, bits: bits, groupSize: groupSize, rules: rules, overrides: overrides,
      dropLMHead: tied)
    let outputs = plan.flatMap(\.outputs)
    let writer = try MLXWeightsWriter(folder: outputFolder, plan: outputs, maxShardBytes: maxShardBytes)
    let entries = Dictionary(uniqueKeysWithValues: plan.flatMap { entry in
      entry.outputs.map { ($0.name, entry) }
    })
    var pending: [String: [UInt8]] = [:]
    for (index, tensor) in writer.order.enumerated() {
      progress(ExportProgress(tensor: tensor.name, index: index, count: writer.order.count))
      if let bytes = pending.removeValue(forKey: tensor.name) {
        try writer.append(name: tensor.name, bytes: bytes)
        continue
      }
      guard let entry = entries[tensor.name] else { continue }
      guard let settings = entry.settings else {
        try writer.append(name: tensor.name) { write in try copyInPieces(entry.source, from: source, to: write) }
        continue
      }
      let module = entry.module
      if tensor.name == module + ".weight" {
        var companions: (scales: [UInt8], biases: [UInt8]) = ([], [])
        try writer.append(name: tensor.name) { write in
          companions = try quantize(
            entry.source, from: source, settings: settings, method: method, decided: decided[entry.source.name],
            blockElements: blockElements, words: write)
        }
        pending[module + ".scales"] = companions.scales
        pending[module + ".biases"] = companions.biases
      } else {
        // Scales or biases come first (an F32 model sorts them beside the U32 words): the
        // words wait too, until the writer reaches them.
        var words: [UInt8] = []
        let companions = try quantize(
          entry.source, from: source, settings: settings, method: method, decided: decided[entry.source.name],
          blockElements: blockElements
        ) { words += $0 }
        pending[module + ".weight"] = words
        pending[module + ".scales"] = companions.scales
        pending[module + ".biases"] = companions.biases
        if let bytes = pending.removeValue(forKey: tensor.name) { try writer.append(name: tensor.name, bytes: bytes) }
      }
    }
    try writer.finish()

    try writeIndex(
      outputs: outputs, plan: plan, shardOf: writer.shardOf, to: outputFolder + "/model.safetensors.index.json")
    try writeConfig(
      config, plan: plan, bits: bits, groupSize: groupSize, location: source.location,
      to: outputFolder + "/config.json")
    if let folder { try copySideFiles(from: folder, to: outputFolder) }
  }

  /// Hands a tensor's stored bytes to `write` a block at a time, dropping each block's mapped
  /// input pages once written.
  static func copyInPieces(
    _ info: TensorInfo, from source: any TensorSource, to write: (UnsafeRawBufferPointer) throws -> Void
  ) throws {
    let piece = TensorRowBlocks.blockElements * 2
    for start in stride(from: 0, to: info.byteCount, by: piece) {
      let range = start..<min(start + piece, info.byteCount)
      try source.withRawBytes(of: info.name) { raw in
        guard raw.count == info.byteCount else {
          throw ExportError.unsupportedTensor(
            location: source.location, tensor: info.name, reason: "holds \(raw.count) bytes, not \(info.byteCount)")
        }
        try write(UnsafeRawBufferPointer(rebasing: raw[range]))
      }
      ConvertJob.releasePages(of: info.name, byteRange: range, in: source)
    }
  }

  /// One source tensor and what it becomes.
  struct PlanEntry {
    var source: TensorInfo
    /// `nil`: copied as is.
    var settings: Settings?
    var outputs: [TensorInfo]
    /// A quantizable weight kept by a rule or an override: config.json says `false` for it.
    var keptByChoice = false
    /// The module path: the name without `.weight`.
    var module: String { String(source.name.dropLast(".weight".count)) }
  }

  /// Decides tensor by tensor what to quantize, as mlx_lm's predicate does: modules with a
  /// rank-2 weight whose row length divides into groups.
  static func makePlan(
    source: any TensorSource, bits: Int, groupSize: Int, rules: [ConvertRule] = [],
    overrides: [String: Settings?], dropLMHead: Bool
  ) throws -> [PlanEntry] {
    try checkSettings((bits, groupSize), tensor: nil, location: source.location)
    var plan: [PlanEntry] = []
    for info in source.tensors {
      // mlx_lm's sanitize drops rotary tables and a tied output head.
      if info.name.hasSuffix("rotary_emb.inv_freq") { continue }
      if dropLMHead && info.name == "lm_head.weight" { continue }
      var settings: Settings? = nil
      var keptByChoice = false
      if isQuantizable(info) {
        let rule = rules.first { info.name.contains($0.pattern) }
        let ruled: Settings?? = try rule.map { rule throws(ConvertError) in
          try MLXLayout.settings(for: rule, main: (bits, groupSize))
        }
        let requested: Settings? = overrides[info.name] ?? ruled ?? (bits, groupSize)
        keptByChoice = requested == nil
        if let requested {
          try checkSettings(requested, tensor: info.name, location: source.location)
          if info.shape[1] % requested.groupSize == 0 {
            settings = requested
          } else if let rule, overrides[info.name] == nil {
            throw ConvertError.ruleCannotApply(
              rule: rule.text, tensor: info.name,
              reason: "its rows of \(info.shape[1]) are not whole groups of \(requested.groupSize)")
          }
        }
      }
      guard let settings else {
        plan.append(PlanEntry(source: info, settings: nil, outputs: [info], keptByChoice: keptByChoice))
        continue
      }
      let module = String(info.name.dropLast(".weight".count))
      let rows = info.shape[0]
      let columns = info.shape[1]
      let scaleType = scaleDType(for: info.dtype)
      let groups = [rows, columns / settings.groupSize]
      plan.append(
        PlanEntry(
          source: info, settings: settings,
          outputs: [
            TensorInfo(
              name: module + ".weight", dtype: .u32, shape: [rows, columns * settings.bits / 32]),
            TensorInfo(name: module + ".scales", dtype: scaleType, shape: groups),
            TensorInfo(name: module + ".biases", dtype: scaleType, shape: groups),
          ]))
    }
    return plan
  }

  /// A Linear or Embedding weight: rank 2, floating point, named `….weight`.
  static func isQuantizable(_ info: TensorInfo) -> Bool {
    info.name.hasSuffix(".weight") && info.shape.count == 2 && info.dtype.isFloatingPoint
      && info.shape[1] > 0
  }

  /// MLX keeps scales and biases in the weight's dtype; types MLX computes in f32 get f32.
  static func scaleDType(for dtype: DType) -> DType {
    switch dtype {
    case .f16, .bf16: dtype
    default: .f32
    }
  }

  static func checkSettings(_ settings: Settings, tensor: String?, location: String) throws {
    guard supportedBits.contains(settings.bits) else {
      throw ExportError.unsupportedSettings(
        location: location, tensor: tensor,
        reason: "MLX export supports bits \(supportedBits.sorted()), not \(settings.bits)")
    }
    guard supportedGroupSizes.contains(settings.groupSize) else {
      throw ExportError.unsupportedSettings(
        location: location, tensor: tensor,
        reason: "MLX supports group sizes \(supportedGroupSizes.sorted()), not \(settings.groupSize)")
    }
  }

  /// Quantizes one weight a block of rows at a time: the packed words go to `words` block by
  /// block (rows are whole words, as groups are), the scales and biases are returned.
  ///
  /// - Throws: `ExportError.unsupportedTensor` when a finite weight would dequantize beyond its
  ///   dtype's range with scales in that dtype.
  static func quantize(
    _ info: TensorInfo, from source: any TensorSource, settings: Settings, method: Method = .rtn,
    decided: StoredCodes? = nil, blockElements: Int = TensorRowBlocks.blockElements,
    words: (UnsafeRawBufferPointer) throws -> Void
  ) throws -> (scales: [UInt8], biases: [UInt8]) {
    let columns = info.shape[1]
    let scaleType = scaleDType(for: info.dtype)
    if let grid = decided?.grid,
      grid.arithmetic != .mlxAffine(scaleType) || grid.bits != settings.bits || grid.groupLength != settings.groupSize
        || grid.rows != info.shape[0] || grid.columns != columns
    {
      throw ExportError.unsupportedTensor(
        location: source.location, tensor: info.name,
        reason: "has codes decided on another grid than its \(settings.bits)-bit group-\(settings.groupSize) one")
    }
    var scales: [UInt8] = []
    var biases: [UInt8] = []
    let rowsPerBlock = TensorRowBlocks.rowsPerBlock(
      columns: columns, rows: info.shape[0], blockElements: blockElements)
    try TensorRowBlocks.forEach(info, in: source, rowsPerBlock: rowsPerBlock) { firstRow, block in
      // Every method decides group by group, so the block's rows split across the cores and
      // their pieces join in row order (rows are whole words) to what one pass would write.
      let blockRows = block.count / columns
      var pieces: [Range<Int>: Result<EncodedRows, any Error>] = [:]
      let lock = NSLock()
      forEachRowBlock(rows: blockRows, elementsPerRow: columns) { rows in
        let piece = Result {
          try encodeRows(
            UnsafeBufferPointer(rebasing: block[(rows.lowerBound * columns)..<(rows.upperBound * columns)]),
            firstRow: firstRow + rows.lowerBound, info, location: source.location, settings: settings,
            method: method, decided: decided)
        }
        lock.withLock { pieces[rows] = piece }
      }
      for rows in pieces.keys.sorted(by: { $0.lowerBound < $1.lowerBound }) {
        let piece = try pieces[rows]!.get()
        try piece.words.withUnsafeBytes { try words($0) }
        scales += piece.scales
        biases += piece.biases
      }
    }
    return (scales, biases)
  }

  /// Rows of one weight as MLX stores them: packed words, and scales and biases in the
  /// weight's dtype's bytes.
  struct EncodedRows {
    var words: [UInt32]
    var scales: [UInt8]
    var biases: [UInt8]
  }

  /// Decides and encodes `values`, whole rows of `info` from `firstRow` on.
  static func encodeRows(
    _ values: UnsafeBufferPointer<Float>, firstRow: Int, _ info: TensorInfo, location: String, settings: Settings,
    method: Method, decided: StoredCodes?
  ) throws -> EncodedRows {
    let columns = info.shape[1]
    let rows = values.count / columns
    let scaleType = scaleDType(for: info.dtype)
    let stored =
      try decided.map { $0.affineRows(firstRow..<(firstRow + rows)) }
      ?? decide(
        values, rows: rows, columns: columns, bits: settings.bits, groupSize: settings.groupSize,
        method: method, scaleType: scaleType)
    // MLX stores scales in the weight's dtype: near F16's largest value their rounding can
    // overflow once multiplied by a code. Refuse rather than write a tensor that loads as inf.
    if !values.contains(where: { !$0.isFinite }),
      let (index, value) = stored.firstDequantized(beyond: PackEncoder.largestFinite(in: info.dtype))
    {
      let shifted = index.isEmpty ? index : [index[0] + firstRow] + index.dropFirst()
      throw ExportError.unsupportedTensor(
        location: location, tensor: info.name,
        reason: "dequantizes to \(value) at index \(shifted) with \(scaleType.rawValue) scales, which MLX's layout cannot avoid")
    }
    return EncodedRows(
      words: try stored.packedWords(), scales: narrow(stored.scales, to: scaleType),
      biases: narrow(stored.offsets, to: scaleType))
  }

  /// Which grid GPTQ decides on in each group.
  public enum GridSearch: Sendable, Equatable {
    /// `mlx.core.quantize`'s own scale and bias.
    case mlx
    /// The clip search on MLX's grid (`MLXAffineGrid.clipSearch`), each element's error weighted
    /// by its column's input energy on the calibration windows: GPTQ's error at a diagonal
    /// Hessian, so the range each group keeps is the one its inputs make matter.
    case weightedClip
  }

  /// The stored grid GPTQ decides on for every weight the export quantizes with `bits` and
  /// `groupSize`, rules and overrides as `exportMLX` takes them, in its scales' dtype: chosen as
  /// `search` says. Weights holding NaN or infinity are left out.
  public static func gptqGrids(
    source: any TensorSource, configData: Data?, bits: Int, groupSize: Int, rules: [ConvertRule] = [],
    overrides: [String: Settings?] = [:], search: GridSearch = .mlx
  ) throws -> [String: SequentialGPTQ.StoredGridMaker] {
    let config = try configData.map { try decodeConfig($0, location: source.location) }
    let plan = try makePlan(
      source: source, bits: bits, groupSize: groupSize, rules: rules, overrides: overrides,
      dropLMHead: config?["tie_word_embeddings"]?.boolValue ?? false)
    var grids: [String: SequentialGPTQ.StoredGridMaker] = [:]
    for entry in plan {
      guard let settings = entry.settings else { continue }
      let scaleType = scaleDType(for: entry.source.dtype)
      grids[entry.source.name] = { weights, rows, columns, energy, _ in
        guard !weights.contains(where: { !$0.isFinite }) else { return nil }
        switch search {
        case .mlx:
          return try MLXAffineGrid.storedGrid(
            weights, rows: rows, columns: columns, bits: settings.bits, groupSize: settings.groupSize,
            scaleType: scaleType)
        case .weightedClip:
          return try MLXAffineGrid.clipSearchedGrid(
            weights, rows: rows, columns: columns, bits: settings.bits, groupSize: settings.groupSize,
            scaleType: scaleType, importance: energy)
        }
      }
    }
    return grids
  }

  static func widen(_ bytes: [UInt8], from dtype: DType) -> [Float] {
    var out = [Float](repeating: 0, count: bytes.count / dtype.byteSize)
    bytes.withUnsafeBytes { raw in out.withUnsafeMutableBufferPointer { DTypeConversion.widen(raw, from: dtype, into: $0) } }
    return out
  }

  static func narrow(_ values: [Float], to dtype: DType) -> [UInt8] {
    var out = [UInt8](repeating: 0, count: values.count * dtype.byteSize)
    values.withUnsafeBufferPointer { source in
      out.withUnsafeMutableBytes { DTypeConversion.narrow(source, to: dtype, into: $0) }
    }
    return out
  }
}
