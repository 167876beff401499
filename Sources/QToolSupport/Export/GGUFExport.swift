import Foundation
import QCompute
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
  public static func exportGGUF(
    source: any TensorSource, configData: Data, tokenizerJSON: Data? = nil, to path: String,
    type: GGUFBlockType, progress: (ExportProgress) -> Void = { _ in }
  ) throws {
    let output = try OutputDestination(path: path, kind: .file, replace: true, inputs: [source.location])
    try exportGGUF(
      source: source, configData: configData, tokenizerJSON: tokenizerJSON, to: output, type: type,
      progress: progress)
  }

  /// Exports `source` to a GGUF file at `output`.
  ///
  /// Rank-2 weights are encoded in `type` when their rows are whole blocks, else in Q8_0 when
  /// rows are a multiple of 32, else in F16 (llama-quantize's fallbacks); norms and biases stay
  /// F32. Q and K projections take llama.cpp's rope row permutation. A tied `lm_head.weight` is
  /// left out, as llama.cpp reuses `token_embd.weight`. One tensor is in memory at a time; the
  /// file appears atomically when complete.
  ///
  /// - Parameters:
  ///   - configData: the model's config.json; its hyper-parameters become the `llama.*` keys.
  ///   - tokenizerJSON: a Hugging Face tokenizer.json, for the `tokenizer.ggml.*` keys that
  ///     llama.cpp needs to run the file (byte-level BPE only).
  /// - Throws: `ExportError` for a missing config value or a tensor llama.cpp has no name for.
  public static func exportGGUF(
    source: any TensorSource, configData: Data, tokenizerJSON: Data? = nil, to output: OutputDestination,
    type: GGUFBlockType, progress: (ExportProgress) -> Void = { _ in }
  ) throws {
    let config = try ModelConfig(data: configData, location: source.location + "/config.json")
    let hyper = try LlamaHyperParameters(config: config, location: config.location)
    var keyValues: [(key: String, value: GGUFValue)] = [
      ("general.architecture", .string("llama"))
    ]
    keyValues += hyper.keyValues
    keyValues.append(("general.file_type", .uint32(fileType(type))))
    keyValues.append((GGUFFile.quantizationVersionKey, .uint32(2)))
    if let tokenizerJSON {
      keyValues += try tokenizerKeyValues(
        tokenizerJSON, vocabSize: hyper.vocabSize, location: source.location)
    }

    let mapped = try mapTensors(source: source, hyper: hyper)
    let plans = mapped.map { tensor in
      GGUFTensorPlan(
        name: tensor.name, type: storageType(for: tensor.source, requested: type),
        shape: tensor.source.shape)
    }
    let writer = try GGUFWriter(output: output, kvs: keyValues, tensors: plans)
    for (index, (tensor, plan)) in zip(mapped, plans).enumerated() {
      progress(ExportProgress(tensor: plan.name, index: index, count: plans.count))
      var values = try source.floats(of: tensor.source.name)
      if let heads = tensor.permuteHeads {
        values = permuteRows(values, rows: tensor.source.shape.first ?? 0, heads: heads)
      }
      try writer.append(name: plan.name, bytes: try encode(values, as: plan.type, tensor: plan.name))
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

  /// The type a tensor is stored in: vectors F32; matrices `requested`, or its fallbacks.
  static func storageType(for info: TensorInfo, requested: GGUFBlockType) -> GGMLType {
    guard info.shape.count == 2 else { return .f32 }
    let rowLength = info.shape[1]
    if rowLength % requested.blockElements == 0, let type = GGMLType(rawValue: requested.ggmlTypeID) {
      return type
    }
    if rowLength % GGUFBlockType.q8_0.blockElements == 0 { return .q8_0 }
    return .f16
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
