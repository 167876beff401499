import QCompute
import QFormats

extension LayerSimilarity {
  /// Layer similarity from the weights of two `qdiff` inputs: their decoder layers, and the
  /// transfer between their hidden spaces from shared tokens when widths or vocabularies differ.
  /// - Throws: `SimilarityError` when either side has no usable decoder layers or tokenizer.
  public static func fromWeights(old: DiffInput, new: DiffInput) throws -> LayerSimilarity {
    let oldLayers = try DecoderLayers(
      location: old.checkpoint.location, source: old.source, architecture: old.architecture)
    let newLayers = try DecoderLayers(
      location: new.checkpoint.location, source: new.source, architecture: new.architecture)
    let transfer = try TransferMatrix.between(
      old: (old.checkpoint, old.source, old.architecture, oldLayers.hiddenSize),
      new: (new.checkpoint, new.source, new.architecture, newLayers.hiddenSize))
    return try fromWeights(old: oldLayers, new: newLayers, transfer: transfer)
  }
}
