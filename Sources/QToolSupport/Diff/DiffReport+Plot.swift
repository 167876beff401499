import Foundation
import QCompute

extension DiffReport {
  /// The `--plot` figure: the CKA heatmap with the layer mapping path, the head-similarity
  /// matrices of the mapped pairs with their assignments, and, when either side is a pack, the
  /// per-layer relative L2 error as bars; stacked into one SVG document.
  public func plot() -> String {
    var figures: [String] = []
    // With data, the mapping from activations is the one shown (and saved).
    if let similarity = data?.layerSimilarity ?? layerSimilarity {
      let path = similarity.mapping.compactMap { pair in pair.old.map { (row: $0, column: pair.new) } }
      figures.append(
        SVGPlot.heatmap(
          similarity.ckaMatrix,
          title: "Linear CKA from \(similarity.source), old x new layers (line: layer mapping)",
          rowTitle: "old layer", columnTitle: "new layer", path: path))
      if !similarity.heads.isEmpty {
        figures.append(
          SVGPlot.heatmapGrid(
            similarity.heads.map { LayerSimilarity.matrix(from: $0.similarity) },
            assignments: similarity.heads.map(\.oldToNew),
            panelTitles: similarity.heads.map { "old \($0.oldLayer) -> new \($0.newLayer)" },
            title: "Attention-head similarity (QK and VO cosine) per mapped layer pair"))
      }
    }
    if let data, !data.layers.isEmpty {
      figures.append(
        SVGPlot.bars(
          data.layers.map { $0.cosine ?? .nan },
          labels: data.layers.map { $0.old == $0.new ? "layer \($0.new)" : "\($0.old) -> \($0.new)" },
          title: "Hidden-state cosine per layer on \((data.text as NSString).lastPathComponent)",
          valueTitle: "mean cosine over tokens"))
    }
    if old.pack || new.pack, !layers.isEmpty {
      figures.append(
        SVGPlot.bars(
          layers.map { $0.relativeL2 ?? .nan }, labels: layers.map(\.name),
          title: "Quantization error per layer", valueTitle: "relative L2 ||a-b|| / ||a||"))
    }
    return SVGPlot.stacked(figures)
  }
}

extension DiffReport {
  /// Writes `plot()` to `path` atomically, never over one of `inputs` or a special file.
  public func writePlot(to path: String, inputs: [String] = []) throws {
    try AtomicText.write(Data(plot().utf8), to: path, inputs: inputs)
  }
}
