import Foundation
import QEngine
import QFormats
import QToolSupport
import Testing

/// `qdiff --images` on the tiny LLaVA and the standalone tower fixtures: a model against itself,
/// against a copy with one tower weight perturbed, against its 8-bit pack, and against a model
/// without a vision tower; the cosines checked against features computed here from the engine.
@Suite struct QDiffImageTests {
  let llava = fixturesDirectory.appendingPathComponent("tiny-llava").path
  static let imageNames = ["rgb.png", "colour.jpg", "grey.jpg", "alpha.png"]

  struct Output: Decodable {
    var same: Bool
    var images: ImageComparisonResult
  }

  func temporaryDirectory() throws -> URL {
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent(
      "qdiff-images-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    return directory
  }

  /// A folder holding copies of the decodable fixture images (Fixtures/images also holds broken ones).
  func imageFolder(in work: URL) throws -> String {
    let folder = work.appendingPathComponent("images")
    try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    for name in Self.imageNames {
      try FileManager.default.copyItem(
        at: fixturesDirectory.appendingPathComponent("images").appendingPathComponent(name),
        to: folder.appendingPathComponent(name))
    }
    return folder.path
  }

  func run(_ old: String, _ new: String, _ extra: [String]) throws -> (
    status: Int32, output: Output?, run: ToolRun
  ) {
    let run = try runTool("qdiff", [old, new, "--format", "json"] + extra)
    return (run.status, try? JSONDecoder().decode(Output.self, from: Data(run.stdout.utf8)), run)
  }

  /// A copy of tiny-llava with `tensor` scaled by 1.05 (same dtype), and the config beside it.
  func perturbedCopy(in work: URL, tensor: String) throws -> String {
    let folder = work.appendingPathComponent("perturbed")
    try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    try FileManager.default.copyItem(
      atPath: llava + "/config.json", toPath: folder.appendingPathComponent("config.json").path)
    let source = try SafetensorsFile(path: llava + "/model.safetensors")
    #expect(source.info(named: tensor) != nil)
    let writer = try SafetensorsWriter(
      path: folder.appendingPathComponent("model.safetensors").path, plan: source.tensors,
      order: .asGiven)
    for info in source.tensors {
      var values = try source.floats(of: info.name)
      if info.name == tensor { values = values.map { $0 * 1.05 } }
      try values.withUnsafeBufferPointer { try writer.append(name: info.name, converting: $0) }
    }
    try writer.finish()
    return folder.path
  }

  /// Mean over tokens of the cosine of the two towers' last hidden states, written from the formula.
  func referenceCosine(
    old: String, new: String, image: String
  ) throws -> (features: Double, projector: Double, relativeL2: Double) {
    func load(_ folder: String) throws -> LLaVAVision {
      let config = try ModelConfig(
        data: Data(contentsOf: URL(fileURLWithPath: folder + "/config.json")), location: folder)
      return try LLaVAVision(
        source: SafetensorsFile(path: folder + "/model.safetensors"), config: config)
    }
    let a = try load(old)
    let b = try load(new)
    let pixels = ImagePreprocessor.fallback(for: a.encoder.config)(try Image.load(path: image))
    func meanCosine(_ x: [Float], _ y: [Float], width: Int) -> Double {
      var total = 0.0
      for row in 0..<(x.count / width) {
        let u = x[(row * width)..<((row + 1) * width)].map(Double.init)
        let v = y[(row * width)..<((row + 1) * width)].map(Double.init)
        let dot = zip(u, v).map(*).reduce(0, +)
        total +=
          dot
          / (u.map { $0 * $0 }.reduce(0, +).squareRoot()
            * v.map { $0 * $0 }.reduce(0, +).squareRoot())
      }
      return total / Double(x.count / width)
    }
    let x = try a.encoder.forward(pixels: pixels)
    let y = try b.encoder.forward(pixels: pixels)
    let p = try a.imageFeatures(pixels: pixels)
    let q = try b.imageFeatures(pixels: pixels)
    let u = x.lastHiddenState.map(Double.init)
    let v = y.lastHiddenState.map(Double.init)
    let relative =
      (zip(u, v).map { ($0 - $1) * ($0 - $1) }.reduce(0, +) / u.map { $0 * $0 }.reduce(0, +))
      .squareRoot()
    return (
      meanCosine(x.lastHiddenState, y.lastHiddenState, width: x.hiddenSize),
      meanCosine(p.values, q.values, width: a.textHiddenSize), relative
    )
  }

  @Test func aModelAgainstItselfHasCosineOne() throws {
    let work = try temporaryDirectory()
    defer { try? FileManager.default.removeItem(at: work) }
    let result = try run(llava, llava, ["--images", try imageFolder(in: work)])
    #expect(result.status == 0, "\(result.run.stderr)")
    let images = try #require(result.output?.images)
    #expect(
      images.images.map { ($0.file as NSString).lastPathComponent } == Self.imageNames.sorted())
    #expect(images.old.kind == "vision-language" && images.old.tower == "clip")
    for image in images.images {
      #expect(image.cosine == 1 && image.relativeL2 == 0 && image.projectorCosine == 1)
      #expect(image.tokens == 17)
    }
    #expect(images.meanCosine == 1 && images.meanProjectorCosine == 1 && images.same)
    #expect(images.layers.map(\.layer) == [0, 1, 2])
    #expect(images.layers.allSatisfy { $0.cosine == 1 })
  }

  @Test func aPerturbedTowerIsBelowOneAndDiffers() throws {
    let work = try temporaryDirectory()
    defer { try? FileManager.default.removeItem(at: work) }
    let copy = try perturbedCopy(
      in: work, tensor: "vision_tower.vision_model.encoder.layers.0.mlp.fc2.weight")
    let image = fixturesDirectory.appendingPathComponent("images/colour.jpg").path
    let result = try run(llava, copy, ["--images", image])
    #expect(result.status == 1, "\(result.run.stderr)")
    let images = try #require(result.output?.images)
    let entry = try #require(images.images.first)
    let cosine = try #require(entry.cosine)
    #expect(cosine < 1 && cosine > 0.5)
    #expect((entry.relativeL2 ?? 0) > 0)
    #expect(!images.same)
    let reference = try referenceCosine(old: llava, new: copy, image: image)
    #expect(abs(cosine - reference.features) < 1e-9)
    #expect(abs((entry.projectorCosine ?? 0) - reference.projector) < 1e-9)
    #expect(abs((entry.relativeL2 ?? 0) - reference.relativeL2) < 1e-9 * reference.relativeL2)
    // Block 0's output and after differ; the embeddings do not.
    #expect(images.layers.first?.cosine == 1)
    #expect(images.layers.dropFirst().allSatisfy { ($0.cosine ?? 1) < 1 })
    // A tolerance above every relative L2 (tensors and images) makes them the same.
    let loose = try run(llava, copy, ["--images", image, "--tolerance", "0.5"])
    #expect(loose.status == 0, "\(loose.run.stderr)")
    #expect(loose.output?.images.same == true)
  }

  @Test(arguments: [("vision/tiny-dinov2", "dinov2"), ("vision/tiny-clip", "clip")])
  func standaloneTowersCompare(folder: String, tower: String) throws {
    let path = fixturesDirectory.appendingPathComponent(folder).path
    let image = fixturesDirectory.appendingPathComponent("images/rgb.png").path
    let result = try run(path, path, ["--images", image])
    #expect(result.status == 0, "\(result.run.stderr)")
    let images = try #require(result.output?.images)
    #expect(images.old.kind == "vision-tower" && images.old.tower == tower)
    #expect(images.images.first?.cosine == 1 && images.images.first?.projectorCosine == nil)
    #expect(images.layers.count == images.old.layers + 1)
  }

  @Test func aModelAgainstItsPackRunsDequantized() throws {
    let work = try temporaryDirectory()
    defer { try? FileManager.default.removeItem(at: work) }
    let pack = work.appendingPathComponent("pack").path
    let convert = try runTool(
      "qconvert", [llava, "-o", pack, "--bits", "8", "--group-size", "32", "--quiet"])
    try #require(convert.status == 0, "\(convert.stderr)")
    let result = try run(llava, pack, ["--images", try imageFolder(in: work)])
    #expect(result.status == 1, "\(result.run.stderr)")
    let images = try #require(result.output?.images)
    #expect(images.images.count == 4)
    for image in images.images {
      #expect((image.cosine ?? 0) > 0.99 && (image.projectorCosine ?? 0) > 0.99)
      #expect((image.projectorRelativeL2 ?? 0) > 0)
    }
  }

  @Test func aModelWithoutAVisionTowerIsTrouble() throws {
    let chat = fixturesDirectory.appendingPathComponent("tiny-chat").path
    let image = fixturesDirectory.appendingPathComponent("images/rgb.png").path
    let result = try runTool("qdiff", [chat, chat, "--images", image])
    #expect(result.status == 2)
    #expect(result.stdout.isEmpty)
    let lines = result.stderr.split(separator: "\n")
    #expect(lines.count == 1)
    #expect(result.stderr.contains("no vision tower") && result.stderr.contains("'--images'"))
  }

  @Test func aFolderWithoutImagesIsTrouble() throws {
    let work = try temporaryDirectory()
    defer { try? FileManager.default.removeItem(at: work) }
    let result = try runTool("qdiff", [llava, llava, "--images", work.path])
    #expect(result.status == 2)
    #expect(result.stderr.contains("no PNG or JPEG images"))
  }

  @Test func everyFormatCarriesTheImageSection() throws {
    let image = fixturesDirectory.appendingPathComponent("images/grey.jpg").path
    let jsonl = try runTool("qdiff", [llava, llava, "--images", image, "--format", "jsonl"])
    #expect(jsonl.status == 0)
    let last = try #require(jsonl.stdout.split(separator: "\n").last)
    struct Line: Decodable { var images: ImageComparisonResult }
    #expect(try JSONDecoder().decode(Line.self, from: Data(last.utf8)).images.meanCosine == 1)
    let tsv = try runTool("qdiff", [llava, llava, "--images", image, "--format", "tsv"])
    #expect(tsv.status == 0)
    #expect(tsv.stdout.contains("\nmetric\tvalue\n"))
    #expect(tsv.stdout.contains("image_mean_cosine\t1.0\n"))
    #expect(tsv.stdout.contains("image_cosine.\(image)\t1.0\n"))
    #expect(tsv.stdout.contains("image_layer_cosine.2\t1.0\n"))
    let table = try runTool("qdiff", [llava, llava, "--images", image])
    #expect(table.status == 0)
    #expect(
      table.stdout.contains("images: 1, towers clip (vision-language) and clip (vision-language)"))
    #expect(table.stdout.contains("same image features"))
  }
}
