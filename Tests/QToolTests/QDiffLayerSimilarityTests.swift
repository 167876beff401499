import Foundation
import QCompute
import QFormats
import QToolSupport
import Testing

#if canImport(FoundationXML)
  import FoundationXML
#endif

/// `qdiff --layer-similarity`, `--plot` and `--save-mapping` on fixtures whose mappings are known
/// by construction, and the transfer matrix against numpy's `lstsq`.
@Suite struct QDiffLayerSimilarityTests {
  let diff = fixturesDirectory.appendingPathComponent("diff")

  func path(_ name: String) -> String { diff.appendingPathComponent(name).path }

  func expected() throws -> [String: Any] {
    try #require(
      try JSONSerialization.jsonObject(
        with: Data(contentsOf: diff.appendingPathComponent("layers.expected.json"))) as? [String: Any])
  }

  func similarity(of json: String) throws -> LayerSimilarity {
    struct Wrapper: Decodable {
      var layerSimilarity: LayerSimilarity?
      enum CodingKeys: String, CodingKey { case layerSimilarity = "layer_similarity" }
    }
    return try #require(try JSONDecoder().decode(Wrapper.self, from: Data(json.utf8)).layerSimilarity)
  }

  func temporaryDirectory() throws -> URL {
    let directory = FileManager.default.temporaryDirectory
      .appendingPathComponent("qdiff-layers-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    return directory
  }

  /// Phi-3 stores q/k/v fused: head matching reads them cut from `qkv_proj`, so a checkpoint
  /// against itself maps every layer and head to itself.
  @Test func phi3FusedWeightsAreMatchedHeadByHead() throws {
    let phi3 = fixturesDirectory.appendingPathComponent("families/phi3").path
    let run = try runTool("qdiff", [phi3, phi3, "--layer-similarity", "--format", "json"])
    #expect(run.status == 0, "\(run.stderr)")
    let result = try similarity(of: run.stdout)
    #expect(result.newToOld == [0, 1])
    #expect(result.heads.count == 2 && result.heads.allSatisfy { $0.newToOld == [0, 1, 2, 3] }, "\(result.heads)")
  }

  @Test func removedLayerAndPermutedHeadsAreRecovered() throws {
    let run = try runTool(
      "qdiff", [path("layers-old"), path("layers-new"), "--layer-similarity", "--format", "json"])
    #expect(run.status == 1, "the static diff still decides the exit status")
    #expect(run.stderr.isEmpty)
    let result = try similarity(of: run.stdout)
    let layers = try #require(try expected()["layers"] as? [String: Any])
    let wanted = try #require(layers["new_to_old"] as? [Int])
    #expect(result.newToOld == wanted.map { Optional($0) })
    #expect(result.old.layers == layers["old_layers"] as? Int)
    #expect(result.new.layers == layers["new_layers"] as? Int)
    #expect(result.old.heads == 4 && result.old.kvHeads == 2 && result.new.kvHeads == 2)
    #expect(result.transfer.kind == "identity")
    // The kept layers are the same weights, so their CKA is 1.
    for pair in result.mapping {
      #expect(abs((pair.cka ?? 0) - 1) < 1e-6, "\(pair)")
    }
    let permuted = try #require(layers["permuted_pair"] as? [String: Any])
    #expect(result.heads.count == wanted.count)
    for heads in result.heads {
      if heads.newLayer == permuted["new_layer"] as? Int {
        #expect(heads.oldLayer == permuted["old_layer"] as? Int)
        let order = try #require(permuted["new_to_old_heads"] as? [Int])
        #expect(heads.newToOld == order.map { Optional($0) })
      } else {
        #expect(heads.newToOld == (0..<4).map { Optional($0) }, "\(heads.oldLayer) -> \(heads.newLayer)")
      }
      #expect(abs(heads.totalSimilarity - 4) < 1e-6)
    }

    let table = try runTool("qdiff", [path("layers-old"), path("layers-new"), "--layer-similarity"])
    #expect(table.status == 1)
    #expect(table.stdout.contains("layer similarity (linear CKA from weights, same hidden basis)"))
    #expect(table.stdout.contains("3 2 0 1"))
  }

  @Test func identicalInputsExit0WithIdentityMappings() throws {
    let model = path("layers-old")
    let run = try runTool("qdiff", [model, model, "--layer-similarity", "--format", "json"])
    #expect(run.status == 0)
    let result = try similarity(of: run.stdout)
    #expect(result.newToOld == (0..<5).map { Optional($0) })
    #expect(result.heads.allSatisfy { $0.newToOld == (0..<4).map { Optional($0) } })
  }

  @Test func transferMatrixMatchesNumpyLeastSquares() throws {
    let transfer = try #require(try expected()["transfer"] as? [String: Any])
    let rows = try #require(transfer["matrix"] as? [[Double]])
    let old = try DiffInput(Checkpoint.open(path("transfer-old")))
    let new = try DiffInput(Checkpoint.open(path("transfer-new")))
    let oldEmbeddings = try #require(
      try TokenEmbeddings.load(checkpoint: old.checkpoint, source: old.source, architecture: old.architecture))
    let newEmbeddings = try #require(
      try TokenEmbeddings.load(checkpoint: new.checkpoint, source: new.source, architecture: new.architecture))
    let fit = try TransferMatrix.fromSharedTokens(old: oldEmbeddings, new: newEmbeddings)
    #expect(fit.sharedTokens == transfer["shared_tokens"] as? Int)
    #expect(fit.matrix.rows == transfer["rows"] as? Int && fit.matrix.columns == transfer["columns"] as? Int)
    let scale = rows.flatMap { $0 }.map(abs).max() ?? 1
    for (i, row) in rows.enumerated() {
      for (j, value) in row.enumerated() {
        #expect(abs(fit.matrix[i, j] - value) <= 1e-9 * scale, "[\(i), \(j)]: \(fit.matrix[i, j]) vs numpy \(value)")
      }
    }

    // The tool reports the same fit.
    let run = try runTool(
      "qdiff", [path("transfer-old"), path("transfer-new"), "--layer-similarity", "--format", "json"])
    #expect(run.status == 1)
    let result = try similarity(of: run.stdout)
    #expect(result.transfer.kind == "shared-tokens")
    #expect(result.transfer.sharedTokens == fit.sharedTokens)
    #expect(result.old.hiddenSize == 16 && result.new.hiddenSize == 24)
    #expect(result.mapping.count == 3 && result.heads.count == 2)
    // Strictly increasing layer map, every old layer used once.
    let mapped = result.newToOld.compactMap { $0 }
    #expect(mapped == [0, 1])
    for heads in result.heads {
      #expect(heads.similarity.count == 2 && heads.similarity.allSatisfy { $0.count == 3 })
      #expect(Set(heads.newToOld.compactMap { $0 }) == [0, 1])
    }
  }

  @Test func tooFewSharedTokensIsAnError() throws {
    let old = try DiffInput(Checkpoint.open(path("transfer-old")))
    let new = try DiffInput(Checkpoint.open(path("transfer-new")))
    var oldEmbeddings = try #require(
      try TokenEmbeddings.load(checkpoint: old.checkpoint, source: old.source, architecture: old.architecture))
    let newEmbeddings = try #require(
      try TokenEmbeddings.load(checkpoint: new.checkpoint, source: new.source, architecture: new.architecture))
    oldEmbeddings.vocabulary = oldEmbeddings.vocabulary.filter { $0.key.hasPrefix("s1") }
    #expect(oldEmbeddings.vocabulary.count == 11)
    #expect(throws: SimilarityError.tooFewSharedTokens(count: 11, hiddenSize: 16)) {
      try TransferMatrix.fromSharedTokens(old: oldEmbeddings, new: newEmbeddings)
    }
    #expect(
      SimilarityError.tooFewSharedTokens(count: 11, hiddenSize: 16).description
        .hasPrefix("too few shared tokens (11) for a stable transfer matrix"))
  }

  @Test func savedMappingRoundTrips() throws {
    let directory = try temporaryDirectory()
    defer { try? FileManager.default.removeItem(at: directory) }
    let file = directory.appendingPathComponent("mapping.json").path
    let run = try runTool(
      "qdiff",
      [path("layers-old"), path("layers-new"), "--save-mapping", file, "--format", "json"])
    #expect(run.status == 1)
    let saved = try LayerMappingFile.read(from: file)
    #expect(saved.format == "qtoolchain-layer-mapping" && saved.version == 1)
    #expect(saved.oldPath == path("layers-old") && saved.newPath == path("layers-new"))
    #expect(saved.layerSimilarity == (try similarity(of: run.stdout)))
    #expect(try LayerMappingFile(data: try saved.encoded(), path: file) == saved)
    // Only the final file is left (the write is atomic).
    #expect(try FileManager.default.contentsOfDirectory(atPath: directory.path) == ["mapping.json"])

    var broken = saved
    broken.layerSimilarity.mapping[0].old = 99
    let brokenPath = directory.appendingPathComponent("broken.json").path
    try broken.encoded().write(to: URL(fileURLWithPath: brokenPath))
    #expect(throws: SimilarityError.self) { try LayerMappingFile.read(from: brokenPath) }
  }

  @Test func plotIsWellFormedAndRenders() throws {
    let directory = try temporaryDirectory()
    defer { try? FileManager.default.removeItem(at: directory) }
    let svgPath = directory.appendingPathComponent("layers.svg").path
    let run = try runTool("qdiff", [path("transfer-old"), path("transfer-new"), "--plot", svgPath])
    #expect(run.status == 1)
    #expect(run.stdout.contains("layer similarity"), "--plot implies --layer-similarity")
    let svg = try String(contentsOfFile: svgPath, encoding: .utf8)
    let document = try XMLDocument(xmlString: svg, options: [])
    #expect(document.rootElement()?.name == "svg")
    let figures = try document.nodes(forXPath: "/*[local-name()='svg']/*[local-name()='svg']")
    #expect(figures.count == 2, "CKA heatmap and head grid")
    let polyline = try #require(
      try document.nodes(forXPath: "//*[local-name()='polyline']").first as? XMLElement)
    #expect((polyline.attributeValue("points")?.split(separator: " ").count ?? 0) == 2)
    try render(svgPath, in: directory)
  }

  @Test func packPlotAddsPerLayerErrorBars() throws {
    let directory = try temporaryDirectory()
    defer { try? FileManager.default.removeItem(at: directory) }
    let model = fixturesDirectory.appendingPathComponent("tiny-llama").path
    let pack = directory.appendingPathComponent("pack").path
    let convert = try runTool("qconvert", [model, "-o", pack, "--bits", "4", "--quiet"])
    try #require(convert.status == 0, "\(convert.stderr)")
    let svgPath = directory.appendingPathComponent("pack.svg").path
    let run = try runTool("qdiff", [model, pack, "--plot", svgPath, "--format", "json"])
    #expect(run.status == 1)
    let result = try similarity(of: run.stdout)
    #expect(result.newToOld == [0, 1])
    let document = try XMLDocument(xmlString: try String(contentsOfFile: svgPath, encoding: .utf8), options: [])
    let figures = try document.nodes(forXPath: "/*[local-name()='svg']/*[local-name()='svg']")
    #expect(figures.count == 3, "CKA heatmap, head grid and error bars")
    let texts = try document.nodes(forXPath: "//*[local-name()='text']").compactMap(\.stringValue)
    #expect(texts.contains("Quantization error per layer"))
    #expect(texts.contains("model.layers.1"))
    try render(svgPath, in: directory)
  }

  @Test func troubleExits2() throws {
    let layers = path("layers-old")
    for arguments in [
      [layers, layers, "--plot", "-"],
      [layers, layers, "--save-mapping", ""],
      // A vision tower has no decoder layers to compare.
      [
        fixturesDirectory.appendingPathComponent("vision/tiny-dinov2").path,
        fixturesDirectory.appendingPathComponent("vision/tiny-dinov2").path, "--layer-similarity",
      ],
      // Different hidden sizes and no tokenizer.json.
      [path("old"), path("transfer-new"), "--layer-similarity"],
    ] {
      let run = try runTool("qdiff", arguments)
      #expect(run.status == 2, "\(arguments): \(run.stderr)")
      #expect(!run.stderr.isEmpty)
    }
    let missing = try runTool("qdiff", [path("old"), path("transfer-new"), "--layer-similarity"])
    #expect(missing.stderr.contains("hidden sizes 16 and 24 differ and there is no 'tokenizer.json'"))
  }

  /// Renders with rsvg-convert (which the README's setup installs) and checks the PNG signature.
  private func render(_ svgPath: String, in directory: URL) throws {
    let converter = try #require(rsvgConvert, "rsvg-convert is not installed (apt librsvg2-bin)")
    let output = directory.appendingPathComponent("figure.png")
    let process = Process()
    process.executableURL = converter
    process.arguments = ["--format", "png", "--output", output.path, svgPath]
    let errors = Pipe()
    process.standardError = errors
    try process.run()
    let message = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    process.waitUntilExit()
    #expect(process.terminationStatus == 0, "rsvg-convert: \(message)")
    let png = try Data(contentsOf: output)
    #expect(png.prefix(8) == Data([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]))
  }
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
  /// An attribute's value by name, also for elements in a default namespace.
  fileprivate func attributeValue(_ name: String) -> String? {
    attributes?.first { $0.name == name }?.stringValue
  }
}
