import QCompute
import QFormats

extension LayerSimilarity {
  /// Layer similarity from hidden states of two `qdiff` inputs run on the same text: `old[i]`
  /// and `new[j]` are examples x hidden of layer `i` and `j`; the head mappings come from the
  /// weights, through the shared-token transfer when the widths or vocabularies differ.
  /// - Throws: `SimilarityError` when either side has no usable decoder layers or tokenizer, or
  ///   the activations do not fit the layer counts.
  public static func fromActivations(
    old: DiffInput, new: DiffInput, oldActivations: [Matrix<Float>], newActivations: [Matrix<Float>],
    batchSize: Int?
  ) throws -> LayerSimilarity {
    let oldLayers = try DecoderLayers(
      location: old.checkpoint.location, source: old.source, architecture: old.architecture)
    let newLayers = try DecoderLayers(
      location: new.checkpoint.location, source: new.source, architecture: new.architecture)
    let transfer = try TransferMatrix.between(
      old: (old.checkpoint, old.source, old.architecture, oldLayers.hiddenSize),
      new: (new.checkpoint, new.source, new.architecture, newLayers.hiddenSize))
    return try fromActivations(
      old: oldActivations, new: newActivations, batchSize: batchSize, layers: (oldLayers, newLayers),
      transfer: transfer)
  }
}
