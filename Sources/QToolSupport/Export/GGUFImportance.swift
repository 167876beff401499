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
