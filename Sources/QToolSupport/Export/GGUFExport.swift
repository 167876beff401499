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
  /// `token_embd.weight`. One tensor is in memory at a time; the file appears atomically when
  /// complete.
  ///
  /// - Parameters:
  ///   - configData: the model's config.json; its hyper-parameters become the `llama.*` keys.
  ///   - configPath: where `configData` was read, for messages.
  ///   - tokenizerJSON: a Hugging Face tokenizer.json, for the `tokenizer.ggml.*` keys that
  ///     llama.cpp needs to run the file (byte-level BPE only).
  /// - Throws: `EngineError.unsupportedModelType` for a `model_type` that is not Llama's kind,
  ///   `ExportError` for a missing config value or a tensor llama.cpp has no name for.
  public static func exportGGUF(
    source: any TensorSource, configData: Data, configPath: String? = nil, tokenizerJSON: Data? = nil,
    to output: OutputDestination, selection: GGUFTypeSelection, progress: (ExportProgress) -> Void = { _ in }
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
    if let tokenizerJSON {
      keyValues += try tokenizerKeyValues(
        tokenizerJSON, vocabSize: hyper.vocabSize, location: source.location)
    }

    let mapped = try mapTensors(source: source, hyper: hyper)
    let model = GGUFMixModel(
      layers: hyper.blockCount, heads: hyper.heads, keyValueHeads: hyper.keyValueHeads,
      tiedEmbeddings: !mapped.contains { $0.name == "output.weight" })
    let types = storageTypes(
      for: mapped.map { ($0.name, $0.source.shape) }, model: model, selection: selection)
    let plans = zip(mapped, types).map { tensor, type in
      GGUFTensorPlan(name: tensor.name, type: type, shape: tensor.source.shape)
    }
    let writer = try GGUFWriter(output: output, kvs: keyValues, tensors: plans)
    for (index, (tensor, plan)) in zip(mapped, plans).enumerated() {
      progress(ExportProgress(tensor: plan.name, index: index, count: plans.count))
      var values = try source.floats(of: tensor.source.name)
      if let heads = tensor.permuteHeads {
        values = permuteRows(values, rows: tensor.source.shape.first ?? 0, heads: heads)
      }
      let bytes = try encode(values, as: plan.type, tensor: plan.name)
      try checkStored(bytes, values: values, as: plan.type, tensor: tensor.source.name, location: source.location)
      try writer.append(name: plan.name, bytes: bytes)
    }
    try writer.finish()
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
    _ bytes: [UInt8], values: [Float], as type: GGMLType, tensor: String, location: String
  ) throws {
    guard type != .f32, values.allSatisfy(\.isFinite) else { return }
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
        reason: "holds \(value) at element \(index), which \(type.name) stores as infinity or NaN")
    }
  }

  static func encode(_ values: [Float], as type: GGMLType, tensor: String) throws -> [UInt8] {
    switch type {
    case .f32:
      return values.withUnsafeBytes { Array($0) }
    case .f16:
      var out = [UInt8](repeating: 0, count: values.count * 2)
      values.withUnsafeBufferPointer { source in
        out.withUnsafeMutableBytes { DTypeConversion.narrow(source, to: .f16, into: $0) }
      }
      return out
    default:
      guard let block = GGUFBlockType.allCases.first(where: { $0.ggmlTypeID == type.rawValue })
      else {
        throw ExportError.unsupportedTensor(
          location: tensor, tensor: tensor, reason: "cannot be encoded as \(type.name)")
      }
      return try values.withUnsafeBufferPointer { try GGUFBlocks.encode($0, type: block) }
    }
  }
}
