import Foundation
import QCompute
import QEngine
import QFormats

/// Writes a Llama-family checkpoint as a GGUF file that llama.cpp and the `gguf` Python package
/// read, as `convert_hf_to_gguf.py` followed by `llama-quantize` would.
public enum GGUFExport {
  /// llama.cpp's `general.file_type` (`LLAMA_FTYPE_MOSTLY_*`) for a whole-model block type.
  static func fileType(_ type: GGUFBlockType) -> UInt32 {
    switch type {
    case .q4_0: 2
    case .q4_1: 3
    case .q8_0: 7
    case .q5_0: 8
    case .q5_1: 9
    case .q2_K: 10
    case .q3_K: 12
    case .q4_K: 14
    case .q5_K: 17
    case .q6_K: 18
    case .iq4_NL: 25
    }
  }

  /// Exports `source` to the file at `path`, replacing a file there (but never the input or a
  /// special file).
  /// Whether `c`'s block is Llama's (llama.cpp's 'llama' architecture): no feature of the
  /// architecture beyond biases, no window shorter than the trained context, and no LongRoPE
  /// (llama.cpp's 'llama' has no per-frequency factors).
  static func runsAsLlama(_ c: DecoderConfiguration) -> Bool {
    if case .longrope = c.ropeScaling { return false }
    var architecture = c.architecture
    let context = c.maxPositionEmbeddings ?? .max
    let sameLayers = architecture.layers.allSatisfy {
      ($0.slidingWindow ?? .max) >= context && $0.rope == .init(theta: c.ropeTheta, scaling: c.ropeScaling)
    }
    architecture.layers = []
    return sameLayers && architecture == DecoderArchitecture()
  }

  public static func exportGGUF(
    source: any TensorSource, configData: Data, configPath: String? = nil, tokenizerJSON: Data? = nil,
    to path: String, type: GGUFBlockType, progress: (ExportProgress) -> Void = { _ in }
  ) throws {
    let output = try OutputDestination(path: path, kind: .file, replace: true, inputs: [source.location])
    try exportGGUF(
      source: source, configData: configData, configPath: configPath, tokenizerJSON: tokenizerJSON,
      to: output, selection: .uniform(type), progress: progress)
  }

  /// Exports `source` to a GGUF file at `output`.
  ///
  /// Rank-2 weights are encoded in the types `selection` picks (llama-quantize's per-tensor
  /// choices for a mix, or one type throughout), falling back as llama-quantize does when rows
  /// are not whole blocks; norms and biases stay F32. Q and K projections take llama.cpp's rope
  /// row permutation. A tied `lm_head.weight` is left out, as llama.cpp reuses
  /// `token_embd.weight`. A matrix a rule matches (by its source name, first match wins) takes the
  /// rule's type, or stays as stored for `keep`. Tensors stream a block of rows at a time, their
  /// input pages dropped once read; the file appears atomically when complete.
  ///
  /// - Parameters:
  ///   - configData: the model's config.json; its hyper-parameters become the `llama.*` keys.
  ///   - configPath: where `configData` was read, for messages.
  ///   - tokenizerJSON: a Hugging Face tokenizer.json, for the `tokenizer.ggml.*` keys that
  ///     llama.cpp needs to run the file (byte-level BPE only).
  ///   - rules: per-tensor rules, `keep` or a GGUF type (`GGUFLayout` refuses the others).
  ///   - decided: codes a calibrated method (GPTQ) already decided on a tensor's block grid
  ///     (`gptqGrids`), by source name: stored as they are, in the tensor's type.
  ///   - importance: an importance matrix (per-column weights by GGUF name, as `llama-imatrix`
  ///     names them): Q4_0, Q4_1, Q5_0 and Q5_1 blocks of those tensors are encoded as
  ///     `llama-quantize --imatrix` encodes them (`GGUFBlocks.encode(_:type:importance:)`), and
  ///     the file records the matrix in the same `quantize.imatrix.*` keys.
  ///   - weightedMix: whether the types follow llama-quantize's mix for a weighted quantization
  ///     (some Q4_0 and Q5_0 tensors as Q4_1 and Q5_1); by default when `importance` is given.
  ///     `gptqGrids` with a weighting plans the same types.
  ///   - blockElements: about how many floats are read and encoded at a time.
  ///   - nonFinite: told of the first NaN or infinity of each tensor as it streams past (it may
  ///     throw to refuse the file, which is then never renamed into place).
  /// - Throws: `EngineError.unsupportedModelType` for a `model_type` that is not Llama's kind,
  ///   `ExportError` for a missing config value or a tensor llama.cpp has no name for.
  public static func exportGGUF(
    source: any TensorSource, configData: Data, configPath: String? = nil, tokenizerJSON: Data? = nil,
    to output: OutputDestination, selection: GGUFTypeSelection, rules: [ConvertRule] = [],
    decided: [String: StoredCodes] = [:], importance: GGUFImportance? = nil, weightedMix: Bool? = nil,
    blockElements: Int = TensorRowBlocks.blockElements,
    nonFinite: ((NonFiniteElement) throws -> Void)? = nil, progress: (ExportProgress) -> Void = { _ in }
  ) throws {
    let config = try ModelConfig(
      data: configData, location: configPath ?? source.location + "/config.json")
    // The file claims llama.cpp's 'llama' architecture, which is right only for configs whose
    // block is Llama's: a Gemma with Llama's tensor names would run wrongly.
    let family = try DecoderFamily(config)
    let hyper = try LlamaHyperParameters(config: config, location: config.location)
    guard Self.runsAsLlama(try DecoderConfiguration(config)) else {
      throw ExportError.invalidConfig(
        location: config.location, key: "model_type",
        reason: "is '\(family.rawValue)', whose block is not Llama's; GGUF export writes Llama's block only")
    }
    var keyValues: [(key: String, value: GGUFValue)] = [
      ("general.architecture", .string("llama"))
    ]
    keyValues += hyper.keyValues
    let fileType: UInt32 =
      switch selection {
      case .mix(let mix), .pure(let mix): mix.fileType
      case .uniform(let type): Self.fileType(type)
      }
    keyValues.append(("general.file_type", .uint32(fileType)))
    keyValues.append((GGUFFile.quantizationVersionKey, .uint32(2)))
    keyValues += importance?.keyValues ?? []
    if let tokenizerJSON {
      keyValues += try tokenizerKeyValues(
        tokenizerJSON, vocabSize: hyper.vocabSize, location: source.location)
    }

    let (mapped, types) = try plannedTypes(
      source: source, hyper: hyper, selection: selection, rules: rules, weighted: weightedMix ?? (importance != nil))
    if let importance {
      try checkImportance(importance.weights, for: mapped, types: types, location: source.location)
    }
    let plans = zip(mapped, types).map { tensor, type in
      GGUFTensorPlan(name: tensor.name, type: type, shape: tensor.source.shape)
    }
    let writer = try GGUFWriter(output: output, kvs: keyValues, tensors: plans)
    for (index, (tensor, plan)) in zip(mapped, plans).enumerated() {
      progress(ExportProgress(tensor: plan.name, index: index, count: plans.count))
      try writer.append(name: plan.name) { write in
        try encodeInBlocks(
          tensor, as: plan.type, from: source, decided: decided[tensor.source.name],
          importance: importance?.weights[plan.name], blockElements: blockElements, nonFinite: nonFinite, to: write)
      }
    }
    try writer.finish()
  }

  /// Source tensors in file order with their GGUF names and storage types: `selection`'s choice
  /// for each, then the first rule matching its source name.
  ///
  /// - Throws: `ConvertError` for a rule this layout cannot hold or whose type does not fit the rows.
  static func plannedTypes(
    source: any TensorSource, hyper: LlamaHyperParameters, selection: GGUFTypeSelection, rules: [ConvertRule],
    weighted: Bool = false
  ) throws -> (mapped: [MappedTensor], types: [GGMLType]) {
    let mapped = try mapTensors(source: source, hyper: hyper)
    let model = GGUFMixModel(
      layers: hyper.blockCount, heads: hyper.heads, keyValueHeads: hyper.keyValueHeads,
      tiedEmbeddings: !mapped.contains { $0.name == "output.weight" })
    var types = storageTypes(
      for: mapped.map { ($0.name, $0.source.shape) }, model: model, selection: selection, weighted: weighted)
    for (position, tensor) in mapped.enumerated() where tensor.source.shape.count == 2 {
      guard let rule = rules.first(where: { tensor.source.name.contains($0.pattern) }) else { continue }
      let type = try GGUFLayout.type(for: rule, storedAs: tensor.source.dtype)
      guard tensor.source.shape[1] % type.blockSize == 0 else {
        throw ConvertError.ruleCannotApply(
          rule: rule.text, tensor: tensor.source.name,
          reason: "its rows of \(tensor.source.shape[1]) are not whole \(type.name) blocks of \(type.blockSize)")
      }
      types[position] = type
    }
    return (mapped, types)
  }

  /// Where the weights come from that choose each block's d (and m) before GPTQ decides codes.
  public enum GridWeighting: Sendable {
    /// Each block from its extremes, as llama-quantize without an importance matrix.
    case none
    /// Weighted by each input column's energy on the calibration windows GPTQ runs on (the
    /// diagonal of the Hessian it already holds), as llama-quantize weights by an imatrix.
    case calibration
    /// Weighted by a matrix's per-column weights, by GGUF tensor name (`llama-imatrix`'s file).
    case matrix([String: [Float]])

    /// The weights of the tensor named `ggufName`, given the input energies calibration measured.
    func importance(of ggufName: String, measured energy: [Float]) -> [Float]? {
      switch self {
      case .none: nil
      case .calibration: energy
      case .matrix(let weights): weights[ggufName]
      }
    }

    /// Whether the file's types follow llama-quantize's mix for a weighted quantization.
    public var isWeighted: Bool {
      if case .none = self { false } else { true }
    }
  }

  /// The block grid GPTQ decides on for every matrix the export stores in a type with one
  /// (`GGUFBlocks.storedGridTypes`: Q4_0, Q4_1, Q5_0, Q5_1, Q8_0), by source name: each block's
  /// d (and m) as llama.cpp's quantizer computes them from the original weights, weighted as
  /// `weighting` says (and the types then those of llama-quantize's weighted mix). Matrices of
  /// other types (K-quants, IQ4_NL, F16, ...) and matrices holding NaN or infinity are left to
  /// the encoder.
  ///
  /// - Throws: `ConvertError` for a rule that does not fit, `ExportError.unsupportedSettings`
  ///   for a matrix whose weights are not one per column.
  public static func gptqGrids(
    source: any TensorSource, configData: Data, configPath: String? = nil, selection: GGUFTypeSelection,
    rules: [ConvertRule] = [], weighting: GridWeighting = .none
  ) throws -> [String: SequentialGPTQ.StoredGridMaker] {
    let config = try ModelConfig(data: configData, location: configPath ?? source.location + "/config.json")
    let hyper = try LlamaHyperParameters(config: config, location: config.location)
    let (mapped, types) = try plannedTypes(
      source: source, hyper: hyper, selection: selection, rules: rules, weighted: weighting.isWeighted)
    if case .matrix(let weights) = weighting {
      try checkImportance(weights, for: mapped, types: types, location: source.location)
    }
    var grids: [String: SequentialGPTQ.StoredGridMaker] = [:]
    for (tensor, type) in zip(mapped, types) where tensor.source.shape.count == 2 {
      guard let block = GGUFBlocks.storedGridTypes.first(where: { $0.ggmlTypeID == type.rawValue }) else { continue }
      let ggufName = tensor.name
      grids[tensor.source.name] = { weights, rows, columns, energy, firstColumn in
        guard !weights.contains(where: { !$0.isFinite }) else { return nil }
        // A matrix read from a file covers whole rows: the columns asked for are a slice.
        var importance = weighting.importance(of: ggufName, measured: energy)
        if let whole = importance, whole.count != columns, firstColumn + columns <= whole.count {
          importance = Array(whole[firstColumn..<(firstColumn + columns)])
        }
        return try GGUFBlocks.storedGrid(
          weights, rows: rows, columns: columns, type: block, importance: importance)
      }
    }
    return grids
  }

  /// Types llama-quantize encodes with an importance matrix but this export does not yet; Q8_0
  /// and the float types ignore one there too.
  static let importanceIgnoredTypes: Set<GGMLType> = [.q8_0, .f16, .bf16, .f32]

  /// Refuses an importance matrix that does not fit: a row length other than the tensor's, or a
  /// tensor whose type llama-quantize would weight by it but this export cannot.
  static func checkImportance(
    _ importance: [String: [Float]], for mapped: [MappedTensor], types: [GGMLType], location: String
  ) throws {
    for (tensor, type) in zip(mapped, types) {
      guard let weights = importance[tensor.name], tensor.source.shape.count == 2 else { continue }
      let columns = tensor.source.shape[1]
      guard weights.count == columns else {
        throw ExportError.unsupportedSettings(
          location: location, tensor: tensor.name,
          reason: "has \(columns) columns, but the importance matrix gives it \(weights.count) weights")
      }
      let weighted = GGUFBlockType.allCases.contains {
        $0.ggmlTypeID == type.rawValue && GGUFBlocks.importanceTypes.contains($0)
      }
      guard weighted || importanceIgnoredTypes.contains(type) else {
        throw ExportError.unsupportedSettings(
          location: location, tensor: tensor.name,
          reason: "is stored as \(type.name), which llama-quantize weights by the importance matrix and this export does not yet (q4_0, q4_1, q5_0 and q5_1 are weighted here)")
      }
    }
  }

  /// Encodes one tensor a block of rows at a time (whole heads for a permuted Q or K), handing
  /// each block's bytes to `write`; blocks are whole rows, so the bytes are those of the whole.
  static func encodeInBlocks(
    _ tensor: MappedTensor, as type: GGMLType, from source: any TensorSource, decided: StoredCodes? = nil,
    importance: [Float]? = nil, blockElements: Int, nonFinite: ((NonFiniteElement) throws -> Void)? = nil, to write: (UnsafeRawBufferPointer) throws -> Void
  ) throws {
    let info = tensor.source
    let rows = info.shape.count == 2 ? info.shape[0] : 1
    let columns = info.elementCount / max(rows, 1)
    let headRows = tensor.permuteHeads.map { rows / max($0, 1) } ?? 1
    let rowsPerBlock = TensorRowBlocks.rowsPerBlock(
      columns: columns, rows: rows, multiple: headRows, blockElements: blockElements)
    var reported = false
    try TensorRowBlocks.forEach(info, in: source, rowsPerBlock: rowsPerBlock) { firstRow, block in
      // One pass over the block (in source order) says whether anything needs a closer look.
      let scan = magnitudeScan(block)
      if !scan.allFinite, !reported, let nonFinite, let offset = block.firstIndex(where: { !$0.isFinite }) {
        reported = true
        let index = info.shape.count == 2 ? [firstRow + offset / columns, offset % columns] : [offset]
        try nonFinite(
          NonFiniteElement(location: source.location, tensor: info.name, index: index, shape: info.shape, value: block[offset]))
      }
      if let decided, info.shape.count == 2 {
        // Codes decided on the block grid are stored as they are, their rows permuted as the
        // weights' would be.
        guard let blockType = GGUFBlockType.allCases.first(where: { $0.ggmlTypeID == type.rawValue }) else {
          throw ExportError.unsupportedTensor(
            location: source.location, tensor: info.name, reason: "has decided codes but is stored as \(type.name)")
        }
        let rows = block.count / columns
        var bytes = try GGUFBlocks.encode(decided, rows: firstRow..<(firstRow + rows), type: blockType)
        if tensor.permuteHeads != nil { bytes = permuteRows(bytes, rows: rows, heads: rows / headRows) }
        try bytes.withUnsafeBytes { try write($0) }
        return
      }
      func encodeBlock(_ values: UnsafeBufferPointer<Float>) throws {
        let weighted = GGUFBlockType.allCases.first { $0.ggmlTypeID == type.rawValue }
          .flatMap { GGUFBlocks.importanceTypes.contains($0) ? $0 : nil }
        let bytes =
          if let importance, let weighted, info.shape.count == 2 {
            try GGUFBlocks.encode(values, type: weighted, importance: importance)
          } else {
            try encode(values, as: type, tensor: tensor.name)
          }
        if scan.allFinite, scan.largest > safeMagnitude {
          try checkStored(
            bytes, values: values, as: type, tensor: info.name, location: source.location,
            firstElement: firstRow * columns)
        }
        try bytes.withUnsafeBytes { try write($0) }
      }
      if tensor.permuteHeads != nil {
        // A vector (a Q or K bias) is one block whose elements are the permuted rows.
        let permutedRows = info.shape.count == 2 ? block.count / columns : block.count
        let heads = info.shape.count == 2 ? permutedRows / headRows : tensor.permuteHeads ?? 1
        try permuteRows(Array(block), rows: permutedRows, heads: heads).withUnsafeBufferPointer {
          try encodeBlock($0)
        }
      } else {
        try encodeBlock(block)
      }
    }
  }

  /// Source tensors in file order with their GGUF names; rotary tables and a tied head dropped.
  static func mapTensors(source: any TensorSource, hyper: LlamaHyperParameters) throws
    -> [MappedTensor]
  {
    var mapped: [MappedTensor] = []
    for info in source.tensors {
      if info.name.hasSuffix("rotary_emb.inv_freq") { continue }
      if hyper.tiedEmbeddings && info.name == "lm_head.weight" { continue }
      guard let name = ggufName(of: info.name) else {
        throw ExportError.unsupportedTensor(
          location: source.location, tensor: info.name, reason: "has no GGUF name for 'llama'")
      }
      guard info.dtype.isFloatingPoint, (1...2).contains(info.shape.count) else {
        throw ExportError.unsupportedTensor(
          location: source.location, tensor: info.name,
          reason: "is \(info.dtype.rawValue) \(info.shape), not a floating-point vector or matrix")
      }
      var heads: Int? = nil
      if name.contains(".attn_q.") { heads = hyper.heads }
      if name.contains(".attn_k.") { heads = hyper.keyValueHeads }
      if let count = heads, (info.shape[0] % (count * 2)) != 0 {
        throw ExportError.unsupportedTensor(
          location: source.location, tensor: info.name,
          reason: "has \(info.shape[0]) rows, not a whole number of \(count) heads")
      }
      mapped.append(MappedTensor(source: info, name: name, permuteHeads: heads))
    }
    return mapped
  }

  /// Refuses a tensor of finite values whose encoding reads back as infinity or NaN: F16 holds
  /// at most 65504, and the blocks' F16 scales overflow for large enough weights.
  ///
  /// - Throws: `ExportError.unsupportedTensor` naming the tensor and the first such element.
  static func checkStored(
    _ bytes: [UInt8], values: UnsafeBufferPointer<Float>, as type: GGMLType, tensor: String, location: String,
    firstElement: Int = 0
  ) throws {
    guard type != .f32, type != .bf16 else { return }
    // Every F16 a block stores (scales, mins) is at most about twice the block's largest
    // magnitude, so values well inside F16's range cannot overflow and need no decoding; a
    // non-finite value is the input's own, not the encoding's.
    let scan = magnitudeScan(values)
    guard scan.allFinite, scan.largest > safeMagnitude else { return }
    let limit = PackEncoder.largestFinite(in: .f16)
    var found: (index: Int, value: Float)?
    if type == .f16 {
      found = values.firstIndex { !(abs($0) <= limit) }.map { ($0, values[$0]) }
    } else if let block = GGUFBlockType.allCases.first(where: { $0.ggmlTypeID == type.rawValue }) {
      let decoded = try bytes.withUnsafeBytes { try GGUFBlocks.decode($0, type: block) }
      // The whole block reads back as inf or NaN; its largest value is the one to blame.
      if let bad = decoded.firstIndex(where: { !$0.isFinite }) {
        let start = bad / block.blockElements * block.blockElements
        let members = start..<min(start + block.blockElements, values.count)
        let largest = members.max { abs(values[$0]) < abs(values[$1]) } ?? bad
        found = (largest, values[largest])
      }
    }
    if let (index, value) = found {
      throw ExportError.unsupportedTensor(
        location: location, tensor: tensor,
        reason: "holds \(value) at element \(firstElement + index), which \(type.name) stores as infinity or NaN")
    }
  }

  /// `checkStored` for values in an array.
  static func checkStored(
    _ bytes: [UInt8], values: [Float], as type: GGMLType, tensor: String, location: String
  ) throws {
    try values.withUnsafeBufferPointer {
      try checkStored(bytes, values: $0, as: type, tensor: tensor, location: location)
    }
  }

  /// `encode` for values in an array.
  static func encode(_ values: [Float], as type: GGMLType, tensor: String) throws -> [UInt8] {
    try values.withUnsafeBufferPointer { try encode($0, as: type, tensor: tensor) }
  }

  /// The largest magnitude among `values` and whether all are finite, eight lanes at a time.
  static func magnitudeScan(_ values: UnsafeBufferPointer<Float>) -> (largest: Float, allFinite: Bool) {
    guard let base = values.baseAddress else { return (0, true) }
    let raw = UnsafeRawPointer(base)
    let finiteLimit = SIMD8<Float>(repeating: .greatestFiniteMagnitude)
    var largest = SIMD8<Float>(repeating: 0)
    var nonFinite = SIMDMask<SIMD8<Float>.MaskStorage>(repeating: false)
    var index = 0
    while index &+ 8 <= values.count {
      let lane = raw.loadUnaligned(fromByteOffset: index &* 4, as: SIMD8<Float>.self)
      let magnitude = lane.replacing(with: -lane, where: lane .< 0)
      // NaN fails every comparison, so it lands here too.
      nonFinite .|= .!(magnitude .<= finiteLimit)
      largest.replace(with: magnitude, where: magnitude .> largest)
      index &+= 8
    }
    var result = largest.max()
    var allFinite = !any(nonFinite)
    while index < values.count {
      let magnitude = abs(values[index])
      if !(magnitude <= .greatestFiniteMagnitude) { allFinite = false }
      result = max(result, magnitude)
      index &+= 1
    }
    return (result, allFinite)
  }

  /// Below this magnitude no block type's F16 scales or mins can overflow (F16 holds 65504).
  static let safeMagnitude: Float = 16384

  static func encode(_ values: UnsafeBufferPointer<Float>, as type: GGMLType, tensor: String) throws -> [UInt8] {
    switch type {
    case .f32:
      return Array(UnsafeRawBufferPointer(values))
    case .f16, .bf16:
      let dtype: DType = type == .f16 ? .f16 : .bf16
      var out = [UInt8](repeating: 0, count: values.count * 2)
      out.withUnsafeMutableBytes { DTypeConversion.narrow(values, to: dtype, into: $0) }
      return out
    default:
      guard let block = GGUFBlockType.allCases.first(where: { $0.ggmlTypeID == type.rawValue })
      else {
        throw ExportError.unsupportedTensor(
          location: tensor, tensor: tensor, reason: "cannot be encoded as \(type.name)")
      }
      return try GGUFBlocks.encode(values, type: block)
    }
  }
}
