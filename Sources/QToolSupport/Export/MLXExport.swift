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
  /// The bit widths this export packs (a subset of MLX's).
  public static let supportedBits: Set<Int> = AffineQuantizer.supportedBits

  /// Quantization settings for one tensor.
  public typealias Settings = (bits: Int, groupSize: Int)

  /// Exports `source` into `outputFolder`: `model.safetensors`, its index, `config.json` and the
  /// tokenizer and other side files from `sideFilesFrom`.
  ///
  /// Streams one tensor at a time; only the scales and biases (1/16 of an F16 model at g64)
  /// wait in memory until their place in the file comes. The folder must exist; the caller makes
  /// it temporary and renames it when this returns.
  ///
  /// - Parameters:
  ///   - configData: the source config.json; the output config gets `quantization` and
  ///     `quantization_config` added.
  ///   - overrides: per tensor name (`X.weight`): other settings, or `nil` to keep it unquantized.
  ///     Recorded in config.json under the module path `X`, as mlx_lm does for mixed recipes.
  public static func exportMLX(
    source: any TensorSource, configData: Data?, sideFilesFrom folder: String?,
    to outputFolder: String, bits: Int, groupSize: Int,
    overrides: [String: Settings?] = [:],
    progress: (ExportProgress) -> Void = { _ in }
  ) throws {
    let config = try configData.map { try decodeConfig($0, location: source.location) }
    let tied = config?["tie_word_embeddings"]?.boolValue ?? false
    let plan = try makePlan(
      source: source, bits: bits, groupSize: groupSize, overrides: overrides,
      dropLMHead: tied)
    let outputs = plan.flatMap(\.outputs)
    let modelPath = outputFolder + "/model.safetensors"
    let writer = try SafetensorsWriter(
      path: modelPath, plan: outputs, metadata: ["format": "mlx"], order: .reference)
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
        try source.withRawBytes(of: entry.source.name) { try writer.append(name: tensor.name, bytes: $0) }
        continue
      }
      let parts = try quantize(entry.source, from: source, settings: settings)
      let module = entry.module
      for (name, bytes) in [
        (module + ".weight", parts.words), (module + ".scales", parts.scales),
        (module + ".biases", parts.biases),
      ] {
        if name == tensor.name {
          try writer.append(name: name, bytes: bytes)
        } else {
          pending[name] = bytes
        }
      }
    }
    try writer.finish()

    try writeIndex(outputs: outputs, plan: plan, to: outputFolder + "/model.safetensors.index.json")
    try writeConfig(
      config, plan: plan, bits: bits, groupSize: groupSize, location: source.location,
      to: outputFolder + "/config.json")
    if let folder { try copySideFiles(from: folder, to: outputFolder) }
  }

  /// One source tensor and what it becomes.
  struct PlanEntry {
    var source: TensorInfo
    /// `nil`: copied as is.
    var settings: Settings?
    var outputs: [TensorInfo]
    /// The module path: the name without `.weight`.
    var module: String { String(source.name.dropLast(".weight".count)) }
  }

  /// Decides tensor by tensor what to quantize, as mlx_lm's predicate does: modules with a
  /// rank-2 weight whose row length divides into groups.
  static func makePlan(
    source: any TensorSource, bits: Int, groupSize: Int, overrides: [String: Settings?],
    dropLMHead: Bool
  ) throws -> [PlanEntry] {
    try checkSettings((bits, groupSize), tensor: nil, location: source.location)
    var plan: [PlanEntry] = []
    for info in source.tensors {
      // mlx_lm's sanitize drops rotary tables and a tied output head.
      if info.name.hasSuffix("rotary_emb.inv_freq") { continue }
      if dropLMHead && info.name == "lm_head.weight" { continue }
      var settings: Settings? = nil
      if isQuantizable(info) {
        let requested: Settings? = overrides[info.name] ?? (bits, groupSize)
        if let requested {
          try checkSettings(requested, tensor: info.name, location: source.location)
          if info.shape[1] % requested.groupSize == 0 { settings = requested }
        }
      }
      guard let settings else {
        plan.append(PlanEntry(source: info, settings: nil, outputs: [info]))
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

  /// The three tensors' bytes for one weight.
  static func quantize(_ info: TensorInfo, from source: any TensorSource, settings: Settings)
    throws -> (words: [UInt8], scales: [UInt8], biases: [UInt8])
  {
    let values = try source.floats(of: info.name)
    let quantized = try values.withUnsafeBufferPointer { buffer in
      try AffineQuantizer.quantize(
        buffer, rows: info.shape[0], columns: info.shape[1], bits: settings.bits,
        groupSize: .elements(settings.groupSize))
    }
    let words = try quantized.packedWords()
    let wordBytes = words.withUnsafeBytes { Array($0) }
    let scaleType = scaleDType(for: info.dtype)
    let scales = narrow(quantized.scales, to: scaleType)
    let biases = narrow(quantized.offsets, to: scaleType)
    // MLX stores scales in the weight's dtype: near F16's largest value their rounding can
    // overflow once multiplied by a code. Refuse rather than write a tensor that loads as inf.
    var stored = quantized
    stored.scales = widen(scales, from: scaleType)
    stored.offsets = widen(biases, from: scaleType)
    if values.allSatisfy(\.isFinite),
      let (index, value) = stored.firstDequantized(beyond: PackEncoder.largestFinite(in: info.dtype))
    {
      throw ExportError.unsupportedTensor(
        location: source.location, tensor: info.name,
        reason: "dequantizes to \(value) at index \(index) with \(scaleType.rawValue) scales, which MLX's layout cannot avoid")
    }
    return (wordBytes, scales, biases)
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
