import Foundation

extension ImageComparisonResult {
  /// The human-readable section of `qdiff`'s table.
  public func table() -> String {
    var out =
      "images: \(images.count), towers \(old.tower) (\(old.kind)) and \(new.tower) (\(new.kind))\n"
    let projector = images.contains { $0.projectorCosine != nil }
    var headers = ["image", "tokens", "cosine", "rel_l2", "max_abs"]
    if projector { headers += ["proj_cosine", "proj_rel_l2"] }
    var table = TextTable(
      headers: headers, alignments: [.left] + Array(repeating: .right, count: headers.count - 1))
    func fixed(_ value: Double?) -> String { value.map { formatFixed($0, 6) } ?? "-" }
    func short(_ value: Double?) -> String { value.map { String(format: "%.3g", $0) } ?? "-" }
    for image in images {
      var row = [
        (image.file as NSString).lastPathComponent, String(image.tokens), fixed(image.cosine),
        short(image.relativeL2), short(image.maxAbsDiff),
      ]
      if projector { row += [fixed(image.projectorCosine), short(image.projectorRelativeL2)] }
      table.append(row)
    }
    out += table.render(indent: "  ")
    out += "  final features: mean cosine \(fixed(meanCosine)), lowest \(fixed(minCosine))"
    if let meanProjectorCosine {
      out += "; projector output: mean cosine \(fixed(meanProjectorCosine))"
    }
    out += "\n"
    if !layers.isEmpty {
      out += "  hidden-state cosine per tower layer (0 = embeddings): "
      out += layers.map { "\($0.layer) \(fixed($0.cosine))" }.joined(separator: ", ") + "\n"
    } else if let layersNote {
      out += "  no hidden-state cosine: \(layersNote)\n"
    }
    out +=
      "  \(same ? "same image features" : "different image features") (\(formatFixed(seconds, 1)) s)\n"
    return out
  }

  /// `metric`, `value` lines for the TSV output's metric section.
  public func tsvLines() -> [(String, String)] {
    func full(_ value: Double?) -> String { value.map { "\($0)" } ?? "" }
    var lines: [(String, String)] = [
      ("images", String(images.count)), ("image_old_tower", old.tower),
      ("image_new_tower", new.tower),
      ("image_mean_cosine", full(meanCosine)), ("image_min_cosine", full(minCosine)),
      ("image_max_relative_l2", full(maxRelativeL2)),
      ("image_mean_projector_cosine", full(meanProjectorCosine)),
      ("image_same", same ? "true" : "false"),
    ]
    for image in images {
      lines += [
        ("image_cosine.\(image.file)", full(image.cosine)),
        ("image_relative_l2.\(image.file)", full(image.relativeL2)),
        ("image_projector_cosine.\(image.file)", full(image.projectorCosine)),
        ("image_projector_relative_l2.\(image.file)", full(image.projectorRelativeL2)),
      ]
    }
    for layer in layers { lines.append(("image_layer_cosine.\(layer.layer)", full(layer.cosine))) }
    return lines
  }
}
