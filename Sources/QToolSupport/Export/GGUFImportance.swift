import QEngine
import QFormats

/// An importance matrix as the GGUF export uses it: per-column weights by GGUF name, and where
/// they came from, which the file records in llama-quantize's `quantize.imatrix.*` keys so that
/// llama.cpp's tools show it as they show theirs.
public struct GGUFImportance: Sendable {
  /// Per tensor, by GGUF name (`blk.0.attn_q.weight`): one weight per input column.
  public var weights: [String: [Float]]
  /// The matrix file, its first calibration dataset, and the chunks it was computed on (0 when
  /// the file does not say).
  public var file: String
  public var dataset: String?
  public var chunkCount: Int

  public init(weights: [String: [Float]], file: String, dataset: String? = nil, chunkCount: Int = 0) {
    self.weights = weights
    self.file = file
    self.dataset = dataset
    self.chunkCount = chunkCount
  }

  /// A matrix as `llama-imatrix` wrote it.
  public init(_ matrix: ImportanceMatrix) {
    self.init(
      weights: matrix.weights, file: matrix.location, dataset: matrix.datasets.first, chunkCount: matrix.chunkCount)
  }

  /// The matrix `llama-imatrix` would record from the same windows: each decoder linear's mean
  /// squared input per column (its input energy over the `tokens` the model ran on), by GGUF
  /// name; linears llama.cpp has no name for are left out.
  ///
  /// - Parameters:
  ///   - energies: squared inputs summed per column, by source tensor name
  ///     (`model.layers.0.self_attn.q_proj.weight`).
  ///   - file: the calibration text, recorded as the matrix's file and dataset.
  public init(energies: [String: [Double]], tokens: Int, file: String, chunkCount: Int) {
    var weights: [String: [Float]] = [:]
    let scale = 1 / Double(max(tokens, 1))
    for (name, energy) in energies {
      guard let ggufName = GGUFExport.ggufName(of: name) else { continue }
      weights[ggufName] = energy.map { Float($0 * scale) }
    }
    self.init(weights: weights, file: file, dataset: file, chunkCount: chunkCount)
  }

  /// The keys llama-quantize writes with `--imatrix`: file and dataset cut to 127 bytes as its
  /// fixed-size override strings cut them, counts as U32; the chunk count only when known.
  var keyValues: [(key: String, value: GGUFValue)] {
    func cut(_ text: String) -> String { String(decoding: text.utf8.prefix(127), as: UTF8.self) }
    var out: [(key: String, value: GGUFValue)] = [("quantize.imatrix.file", .string(cut(file)))]
    if let dataset { out.append(("quantize.imatrix.dataset", .string(cut(dataset)))) }
    out.append(("quantize.imatrix.entries_count", .uint32(UInt32(clamping: weights.count))))
    if chunkCount > 0 { out.append(("quantize.imatrix.chunks_count", .uint32(UInt32(clamping: chunkCount)))) }
    return out
  }
}

extension ConvertCalibration {
  /// The importance matrix `llama-imatrix` would record on these windows (the full-precision
  /// model's mean squared input of each decoder linear), naming `file` as its source.
  public func importanceMatrix(file: String, progress: ((Int, Int) -> Void)? = nil) throws -> GGUFImportance {
    let energies = try CalibrationCollector(model: model, prefix: prefix)
      .collectInputEnergies(windows: windows, progress: progress)
    return GGUFImportance(
      energies: energies, tokens: windows.reduce(0) { $0 + $1.count }, file: file, chunkCount: windows.count)
  }
}
