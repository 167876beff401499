import QCompute
import QFormats

/// The linear map between two models' hidden spaces (LoRASuite's `W_x`), old hidden x new
/// hidden, such that an old hidden vector `x` corresponds to `x W` in the new model.
public enum TransferMatrix {
  /// The map and how many tokens it was fitted on.
  public struct Fit: Sendable {
    /// Old hidden x new hidden.
    public var matrix: Matrix<Double>
    /// Token strings present in both vocabularies.
    public var sharedTokens: Int
  }

  /// The least-squares `W` minimising `‖E_old W − E_new‖` over the input embeddings of the
  /// token strings both vocabularies contain (the same string may have different ids).
  /// - Throws: `SimilarityError.tooFewSharedTokens` when fewer tokens are shared than the old
  ///   hidden size (the system would be underdetermined), `SimilarityError.compute` when the
  ///   shared embeddings do not have full rank; the sources' read errors.
  public static func fromSharedTokens(old: TokenEmbeddings, new: TokenEmbeddings) throws -> Fit {
    // Sorted for a deterministic row order (the solution does not depend on it).
    let shared = old.vocabulary.keys.filter { new.vocabulary[$0] != nil }.sorted()
    guard shared.count >= old.hiddenSize, shared.count > 0 else {
      throw SimilarityError.tooFewSharedTokens(count: shared.count, hiddenSize: old.hiddenSize)
    }
    let a = try old.rows(shared.compactMap { old.vocabulary[$0] })
    let b = try new.rows(shared.compactMap { new.vocabulary[$0] })
    do {
      return Fit(matrix: try Matrix.leastSquares(a, b), sharedTokens: shared.count)
    } catch {
      throw SimilarityError.compute(
        "the embeddings of the \(shared.count) shared tokens do not determine a transfer matrix: \(error)")
    }
  }

  /// The transfer between two checkpoints' hidden spaces: nil (the identity) when the hidden
  /// sizes agree and the vocabularies are the same or unknown, else the shared-token fit.
  /// - Throws: `SimilarityError.missingTokenizer` when the sizes differ and a side has no
  ///   `tokenizer.json`; the errors of `fromSharedTokens`.
  public static func between(
    old: (checkpoint: Checkpoint, source: any TensorSource, architecture: ArchitectureSummary, hiddenSize: Int),
    new: (checkpoint: Checkpoint, source: any TensorSource, architecture: ArchitectureSummary, hiddenSize: Int)
  ) throws -> Fit? {
    let oldEmbeddings = try TokenEmbeddings.load(
      checkpoint: old.checkpoint, source: old.source, architecture: old.architecture)
    let newEmbeddings = try TokenEmbeddings.load(
      checkpoint: new.checkpoint, source: new.source, architecture: new.architecture)
    if old.hiddenSize == new.hiddenSize {
      guard let oldEmbeddings, let newEmbeddings, oldEmbeddings.vocabulary != newEmbeddings.vocabulary
      else { return nil }
      return try fromSharedTokens(old: oldEmbeddings, new: newEmbeddings)
    }
    guard let oldEmbeddings, let newEmbeddings else {
      throw SimilarityError.missingTokenizer(
        location: oldEmbeddings == nil ? old.checkpoint.location : new.checkpoint.location,
        hiddenSizes: (old.hiddenSize, new.hiddenSize))
    }
    return try fromSharedTokens(old: oldEmbeddings, new: newEmbeddings)
  }
}
