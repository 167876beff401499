import Foundation
import QCompute
import QToolSupport
import Testing

#if canImport(FoundationXML)
  import FoundationXML
#endif

/// The figures `qdiff --plot` writes, each with a tricky title to exercise escaping.
private func sampleFigures() throws -> [(name: String, svg: String)] {
  var cka = Matrix<Double>(rows: 9, columns: 12)
  for i in 0..<9 {
    for j in 0..<12 { cka[i, j] = 1 - abs(Double(i) / 8 - Double(j) / 11) }
  }
  cka[3, 4] = .nan
  let mapping = LayerMapping.orderPreserving(cka)
  let path = mapping.enumerated().compactMap { new, old in old.map { (row: $0, column: new) } }
  let heads = try Matrix<Double>([[0.9, 0.1, -0.2], [0.05, 0.8, 0.3]])
  return [
    (
      "heatmap",
      SVGPlot.heatmap(
        cka, title: "CKA <old> & \"new\"", rowTitle: "old layer", columnTitle: "new layer",
        path: path)
    ),
    (
      "grid",
      SVGPlot.heatmapGrid(
        [heads, heads.transposed(), Matrix(rows: 1, columns: 1)],
        assignments: [Hungarian.maximize(heads), Hungarian.maximize(heads.transposed()), [0]],
        panelTitles: ["0 → 0", "1 → 2", "2 → 3"], title: "Heads")
    ),
    (
      "barsHorizontal",
      SVGPlot.bars(
        [0.01, 0.2, 0.05, .nan, 0], labels: ["model.layers.0.mlp", "1", "2", "3", "4"],
        title: "Error", valueTitle: "relative L2")
    ),
    (
      "barsVertical",
      SVGPlot.bars(
        [3e-5, -1e-5, 2e-5], labels: ["a", "b", "c"], title: "Signed", valueTitle: "delta",
        orientation: .vertical)
    ),
  ]
}

@Suite struct PlotSVGTests {
  @Test func documentsAreWellFormedSVG() throws {
    var figures = try sampleFigures()
    figures.append(("stacked", SVGPlot.stacked(figures.map(\.svg))))
    for (name, svg) in figures {
      let document = try XMLDocument(xmlString: svg, options: [])
      let root = try #require(document.rootElement(), "\(name)")
      #expect(root.name == "svg", "\(name)")
      #expect(root.value(of: "version") == "1.1", "\(name)")
      let width = Double(root.value(of: "width") ?? "") ?? 0
      let height = Double(root.value(of: "height") ?? "") ?? 0
      #expect(width > 100 && height > 100, "\(name): \(width) x \(height)")
      #expect(!svg.contains("NaN\""), "\(name): no NaN attribute values")
    }
    // Escaped text survives the round trip.
    let heatmap = try XMLDocument(xmlString: figures[0].svg, options: [])
    let texts = try heatmap.nodes(forXPath: "//*[local-name()='text']").compactMap(\.stringValue)
    #expect(texts.contains("CKA <old> & \"new\""))
    // Tick labels in exponent form keep a mantissa below 10.
    let vertical = try XMLDocument(xmlString: figures[3].svg, options: [])
    let ticks = try vertical.nodes(forXPath: "//*[local-name()='text']").compactMap(\.stringValue)
    #expect(ticks.contains("-1e-5") && ticks.contains("3e-5"), "\(ticks)")
    #expect(!ticks.contains { $0.hasPrefix("10e") || $0.hasPrefix("-10e") }, "\(ticks)")
  }

  @Test func heatmapDrawsEveryCellAndThePath() throws {
    let figures = try sampleFigures()
    let document = try XMLDocument(xmlString: figures[0].svg, options: [])
    let cells = try document.nodes(forXPath: "//*[local-name()='rect'][*[local-name()='title']]")
    #expect(cells.count == 9 * 12)
    let polyline = try #require(
      try document.nodes(forXPath: "//*[local-name()='polyline']").first as? XMLElement)
    let points = polyline.value(of: "points")?.split(separator: " ") ?? []
    #expect(points.count == 9, "one point per mapped pair (9 old layers into 12 new)")
  }

  @Test(.enabled(if: rsvgConvert != nil, "rsvg-convert is not installed (apt librsvg2-bin)"))
  func rendersToPNG() throws {
    let converter = try #require(rsvgConvert)
    let directory = FileManager.default.temporaryDirectory
      .appendingPathComponent("plot-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: directory) }

    var figures = try sampleFigures()
    figures.append(("stacked", SVGPlot.stacked(figures.map(\.svg))))
    for (name, svg) in figures {
      let root = try #require(try XMLDocument(xmlString: svg, options: []).rootElement())
      let width = Int(root.value(of: "width") ?? "") ?? 0
      let height = Int(root.value(of: "height") ?? "") ?? 0
      let png = try render(svg, name: name, in: directory, converter: converter)
      let size = try #require(pngSize(png), "\(name): not a PNG")
      #expect(size.width == width && size.height == height, "\(name): \(size) vs \(width)x\(height)")

      // Not blank: far larger than a white page of the same size, which compresses to almost nothing.
      let blank = """
        <?xml version="1.0" encoding="UTF-8"?>
        <svg xmlns="http://www.w3.org/2000/svg" version="1.1" width="\(width)" height="\(height)">\
        <rect x="0" y="0" width="\(width)" height="\(height)" fill="#ffffff"/></svg>
        """
      let blankPNG = try render(blank, name: "\(name)-blank", in: directory, converter: converter)
      #expect(pngSize(blankPNG)?.width == width)
      #expect(png.count > 3 * blankPNG.count, "\(name): \(png.count) vs blank \(blankPNG.count)")
    }
  }

  private func render(_ svg: String, name: String, in directory: URL, converter: URL) throws
    -> Data
  {
    let input = directory.appendingPathComponent("\(name).svg")
    let output = directory.appendingPathComponent("\(name).png")
    try Data(svg.utf8).write(to: input)
    let process = Process()
    process.executableURL = converter
    process.arguments = ["--format", "png", "--output", output.path, input.path]
    let errors = Pipe()
    process.standardError = errors
    try process.run()
    let message = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    process.waitUntilExit()
    try #require(process.terminationStatus == 0, "rsvg-convert \(name): \(message)")
    return try Data(contentsOf: output)
  }
}

/// The PNG's dimensions from its IHDR chunk, nil when the signature or chunk is wrong.
private func pngSize(_ data: Data) -> (width: Int, height: Int)? {
  let bytes = [UInt8](data.prefix(24))
  guard bytes.count == 24, bytes[0..<8] == [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A],
    bytes[12..<16] == [0x49, 0x48, 0x44, 0x52]
  else { return nil }
  func bigEndian(_ offset: Int) -> Int {
    bytes[offset..<(offset + 4)].reduce(0) { $0 << 8 | Int($1) }
  }
  return (bigEndian(16), bigEndian(20))
}

/// `rsvg-convert` on the PATH, if installed.
private let rsvgConvert: URL? = {
  let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
  for directory in path.split(separator: ":") {
    let candidate = URL(fileURLWithPath: String(directory)).appendingPathComponent("rsvg-convert")
    if FileManager.default.isExecutableFile(atPath: candidate.path) { return candidate }
  }
  return nil
}()

extension XMLElement {
  /// An attribute's value by name (FoundationXML's `attribute(forName:)` misses attributes of
  /// elements in a default namespace).
  fileprivate func value(of name: String) -> String? {
    attributes?.first { $0.name == name }?.stringValue
  }
}
