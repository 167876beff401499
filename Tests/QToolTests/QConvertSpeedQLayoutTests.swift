import Foundation
import QCompute
import QEngine
import QFormats
import Testing

@testable import QToolSupport

/// SPEED-Q's three stages through `qconvert --method speedq --calib-images` on the Idefics3
/// (SmolVLM) and InternVL layouts: stage 1 on the tower's blocks, stage 2 refitting the
/// connector's linear (Idefics3) or the projector's `linear_2` (InternVL) to the quantized
/// tower, stage 3 on the language model; and `qinspect` running each with an image.
@Suite struct QConvertSpeedQLayoutTests {
  struct Layout: Sendable, CustomTestStringConvertible {
    var folder: String
    /// Linears that must come out packed: tower and language model.
    var packed: [String]
    /// The tensors stage 2 refits.
    var refitted: [String]
    /// The tower's patch embedding, kept in full precision as SPEED-Q keeps it.
    var patchEmbedding: String
    var architecture: String
    /// `qinspect`'s component lines.
    var components: [String]
    var testDescription: String { folder }

    var model: String { fixturesDirectory.appendingPathComponent("\(folder)/tiny-\(folder)").path }
  }

  static let layouts = [
    Layout(
      folder: "idefics3",
      packed: [
        "model.vision_model.encoder.layers.0.self_attn.q_proj.weight",
        "model.vision_model.encoder.layers.1.mlp.fc2.weight",
        "model.text_model.layers.0.self_attn.q_proj.weight",
        "model.text_model.layers.1.mlp.down_proj.weight",
      ],
      refitted: ["model.connector.modality_projection.proj.weight"],
      patchEmbedding: "model.vision_model.embeddings.patch_embedding.weight",
      architecture: "idefics3",
      components: ["language-model       21", "projector             1", "vision-tower         37"]),
    Layout(
      folder: "internvl",
      packed: [
        "vision_tower.encoder.layer.0.attention.q_proj.weight",
        "vision_tower.encoder.layer.1.mlp.fc2.weight",
        "language_model.model.layers.0.self_attn.q_proj.weight",
        "language_model.model.layers.1.mlp.down_proj.weight",
      ],
      refitted: ["multi_modal_projector.linear_2.weight", "multi_modal_projector.linear_2.bias"],
      patchEmbedding: "vision_tower.embeddings.patch_embeddings.projection.weight",
      architecture: "internvl",
      components: ["language-model       27", "projector             6", "vision-tower         40"]),
  ]

  let text = fixturesDirectory.appendingPathComponent("tiny-chat.sample.txt").path

  struct Expected: Decodable {
    struct Case: Decodable {
      var name: String
      var prompt: String
      var generated: [Int]
      var completion: String
    }
    var image: String
    var cases: [Case]
  }

  struct Report: Decodable {
    struct Generation: Decodable {
      var completion: String
      var tokens: Int
    }
    var generation: Generation?
  }

  func imageFolder(in work: URL) throws -> URL {
    let folder = work.appending(path: "images")
    try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    for name in ["rgb.png", "colour.jpg", "grey.jpg", "alpha.png"] {
      try FileManager.default.copyItem(
        at: fixturesDirectory.appending(path: "images/\(name)"), to: folder.appending(path: name))
    }
    return folder
  }

  func arguments(_ layout: Layout, output: String, images: String, checkpoint: String) -> [String] {
    [
      layout.model, "-o", output, "--bits", "2", "--method", "speedq", "--calib", text,
      "--calib-context", "32",
      "--calib-windows", "2", "--qat-steps", "1", "--calib-images", images, "--qat-checkpoint",
      checkpoint,
      "--vision-iterations", "20",
    ]
  }

  static func model(_ layout: Layout, _ source: any TensorSource) throws -> VisionLanguageModel {
    let path = layout.model + "/config.json"
    let config = try ModelConfig(
      data: try Data(contentsOf: URL(fileURLWithPath: path)), location: path)
    return try VisionLanguageModel(source: source, config: config)
  }

  /// The mean token cosine of the pack's image features (dequantized tower, its connector) to
  /// the FP model's, on the calibration images.
  func featureCosine(_ layout: Layout, pack: String, images folder: URL) throws -> Double {
    let fp = try Self.model(layout, try Checkpoint.open(layout.model).source)
    let packed = try Self.model(
      layout, try PackedCheckpoint(wrapping: try Checkpoint.open(pack).source))
    let images = try SpeedQStage1.images(inFolder: folder.path, preprocessor: fp.preprocessor)
    let width = fp.decoder.configuration.hiddenSize
    let a = try images.map { try fp.imageFeatures(pixels: $0).elements }
    let b = try images.map { try packed.imageFeatures(pixels: $0).elements }
    return SpeedQStage1.meanCosine(a, b, width: width)
  }

  @Test(arguments: layouts)
  func threeStagesRun(_ layout: Layout) throws {
    let work = FileManager.default.temporaryDirectory.appending(
      path: "qconvert-\(layout.folder)-\(UUID().uuidString)")
    defer { try? FileManager.default.removeItem(at: work) }
    let images = try imageFolder(in: work)
    let refitOutput = work.appending(path: "refit").path
    let skipOutput = work.appending(path: "skip").path
    let checkpoint = work.appending(path: "state.safetensors").path
    let run = try runTool(
      "qconvert",
      arguments(layout, output: refitOutput, images: images.path, checkpoint: checkpoint))
    #expect(run.status == 0, "\(run.stderr)")
    let stageOne = try #require(
      run.stderr.range(of: "vision tower: 12 linears on 4 images")?.lowerBound)
    // 4 images of 16 patches, 4 rows each after the pixel shuffle.
    let stageTwo = try #require(
      run.stderr.range(of: "projector refit on 16 tokens of 4 images;")?.lowerBound)
    let stageThree = try #require(run.stderr.range(of: "step 1/1")?.lowerBound)
    #expect(stageOne < stageTwo && stageTwo < stageThree)
    #expect(FileManager.default.fileExists(atPath: checkpoint + ".stage1"))
    #expect(FileManager.default.fileExists(atPath: checkpoint + ".stage2"))

    let skip = try runTool(
      "qconvert",
      arguments(
        layout, output: skipOutput, images: images.path,
        checkpoint: work.appending(path: "other.safetensors").path)
        + ["--no-projector-refit"])
    #expect(skip.status == 0, "\(skip.stderr)")

    let pack = try PackedCheckpoint(wrapping: try Checkpoint.open(refitOutput).source)
    let original = try Checkpoint.open(layout.model).source
    // Tower and text linears are packed; the refitted tensors stay dense, changed by stage 2 only.
    for name in layout.packed {
      #expect(pack.packDescriptions[name] != nil, "\(name) is not packed")
    }
    #expect(pack.packDescriptions[layout.patchEmbedding] == nil)
    #expect(
      try pack.floats(of: layout.patchEmbedding) == original.floats(of: layout.patchEmbedding))
    let skipped = try Checkpoint.open(skipOutput).source
    for name in layout.refitted {
      #expect(pack.packDescriptions[name] == nil)
      #expect(try pack.floats(of: name) != original.floats(of: name), "\(name)")
      #expect(try skipped.floats(of: name) == original.floats(of: name), "\(name)")
    }

    let refitCosine = try featureCosine(layout, pack: refitOutput, images: images)
    let skipCosine = try featureCosine(layout, pack: skipOutput, images: images)
    #expect(refitCosine > skipCosine, "refit \(refitCosine), stage 1 alone \(skipCosine)")

    // `qdiff --images` runs the same projector on both sides and reports the same mean cosine.
    let diff = try runTool(
      "qdiff", [layout.model, refitOutput, "--images", images.path, "--format", "json"])
    #expect(diff.status == 1, "\(diff.stderr)")
    let report = try #require(
      try JSONSerialization.jsonObject(with: Data(diff.stdout.utf8)) as? [String: Any])
    let projector = try #require(
      (report["images"] as? [String: Any])?["mean_projector_cosine"] as? Double)
    #expect(abs(projector - refitCosine) <= 1e-6, "qdiff \(projector), engine \(refitCosine)")

    // The pack runs whole: finite logits for a prompt with the image.
    let model = try Self.model(layout, pack)
    let pixels = try SpeedQStage1.images(
      inFolder: images.path, preprocessor: model.preprocessor, limit: 1)[0]
    let image = try #require(model.imageTokenIndex)
    let logits = try model.logits(tokens: [52, image, 2599, 762], pixels: pixels)
    #expect(logits.rows == 7)
    #expect(logits.elements.allSatisfy { $0.isFinite })

    // Again: stages 1 and 2 come from their files.
    let again = try runTool(
      "qconvert",
      arguments(layout, output: refitOutput, images: images.path, checkpoint: checkpoint) + [
        "--force"
      ])
    #expect(again.status == 0, "\(again.stderr)")
    #expect(
      again.stderr.contains("projector refit on 16 tokens of 4 images (resumed)"), "\(again.stderr)"
    )
    let resumed = try Checkpoint.open(refitOutput).source
    for name in layout.refitted {
      #expect(try resumed.floats(of: name) == pack.floats(of: name))
    }
  }

  /// `qinspect --generate` with the image token in the prompt: the tokenizer's markers around the
  /// image rows, greedy tokens as transformers gives them.
  @Test(arguments: layouts)
  func qinspectGeneratesWithAnImage(_ layout: Layout) throws {
    let data = try Data(
      contentsOf: fixturesDirectory.appendingPathComponent("\(layout.folder)/expected.json"))
    let expected = try JSONDecoder().decode(Expected.self, from: data)
    let image = fixturesDirectory.appendingPathComponent(expected.image).path
    for testCase in expected.cases {
      let run = try runTool(
        "qinspect",
        [
          layout.model, "--format", "json", "--generate", testCase.prompt, "--image", image,
          "--max-tokens",
          "\(testCase.generated.count)",
        ])
      #expect(run.status == 0, "\(run.stderr)")
      let report = try #require(
        try JSONDecoder().decode([Report].self, from: Data(run.stdout.utf8)).first)
      #expect(report.generation?.completion == testCase.completion, "\(testCase.name)")
      #expect(report.generation?.tokens == testCase.generated.count)
    }
  }

  @Test(arguments: layouts)
  func qinspectShowsTheComponents(_ layout: Layout) throws {
    let run = try runTool("qinspect", [layout.model])
    #expect(run.status == 0, "\(run.stderr)")
    #expect(run.stdout.contains("architecture: \(layout.architecture) (vision-language)"))
    for component in layout.components {
      #expect(run.stdout.contains(component), "\(run.stdout)")
    }
  }
}
