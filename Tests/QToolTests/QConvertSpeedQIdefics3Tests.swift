import Foundation
import QCompute
import QEngine
import QFormats
import Testing

@testable import QToolSupport

/// SPEED-Q's three stages on the Idefics3 (SmolVLM) layout through `qconvert --method speedq
/// --calib-images`: stage 1 on the SigLIP blocks under `model.vision_model.`, stage 2 refitting
/// the connector's linear to the quantized tower, stage 3 on the Llama under `model.text_model.`;
/// and `qinspect` running the model with an image.
@Suite struct QConvertSpeedQIdefics3Tests {
  static let model = fixturesDirectory.appendingPathComponent("idefics3/tiny-idefics3").path
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

  func arguments(output: String, images: String, checkpoint: String) -> [String] {
    [
      Self.model, "-o", output, "--bits", "2", "--method", "speedq", "--calib", text, "--calib-context", "32",
      "--calib-windows", "2", "--qat-steps", "1", "--calib-images", images, "--qat-checkpoint", checkpoint,
      "--vision-iterations", "20",
    ]
  }

  static func model(_ source: any TensorSource) throws -> VisionLanguageModel {
    let path = model + "/config.json"
    let config = try ModelConfig(data: try Data(contentsOf: URL(fileURLWithPath: path)), location: path)
    return try VisionLanguageModel(source: source, config: config)
  }

  /// The mean token cosine of the pack's image features (dequantized tower, its connector) to
  /// the FP model's, on the calibration images.
  func featureCosine(pack: String, images folder: URL) throws -> Double {
    let fp = try Self.model(try Checkpoint.open(Self.model).source)
    let packed = try Self.model(try PackedCheckpoint(wrapping: try Checkpoint.open(pack).source))
    let images = try SpeedQStage1.images(inFolder: folder.path, preprocessor: fp.preprocessor)
    let width = fp.decoder.configuration.hiddenSize
    let a = try images.map { try fp.imageFeatures(pixels: $0).elements }
    let b = try images.map { try packed.imageFeatures(pixels: $0).elements }
    return SpeedQStage1.meanCosine(a, b, width: width)
  }

  @Test func threeStagesRunOnTheIdefics3Layout() throws {
    let work = FileManager.default.temporaryDirectory.appending(path: "qconvert-idefics3-\(UUID().uuidString)")
    defer { try? FileManager.default.removeItem(at: work) }
    let images = try imageFolder(in: work)
    let refitOutput = work.appending(path: "refit").path
    let skipOutput = work.appending(path: "skip").path
    let checkpoint = work.appending(path: "state.safetensors").path
    let run = try runTool("qconvert", arguments(output: refitOutput, images: images.path, checkpoint: checkpoint))
    #expect(run.status == 0, "\(run.stderr)")
    let stageOne = try #require(run.stderr.range(of: "vision tower: 12 linears on 4 images")?.lowerBound)
    // 4 images of 16 patches, 4 rows each after the pixel shuffle.
    let stageTwo = try #require(run.stderr.range(of: "projector refit on 16 tokens of 4 images;")?.lowerBound)
    let stageThree = try #require(run.stderr.range(of: "step 1/1")?.lowerBound)
    #expect(stageOne < stageTwo && stageTwo < stageThree)
    #expect(FileManager.default.fileExists(atPath: checkpoint + ".stage1"))
    #expect(FileManager.default.fileExists(atPath: checkpoint + ".stage2"))

    let skip = try runTool(
      "qconvert",
      arguments(output: skipOutput, images: images.path, checkpoint: work.appending(path: "other.safetensors").path)
        + ["--no-projector-refit"])
    #expect(skip.status == 0, "\(skip.stderr)")

    let pack = try PackedCheckpoint(wrapping: try Checkpoint.open(refitOutput).source)
    let original = try Checkpoint.open(Self.model).source
    // Tower and text linears are packed; the connector stays dense, refitted.
    for name in [
      "model.vision_model.encoder.layers.0.self_attn.q_proj.weight", "model.vision_model.encoder.layers.1.mlp.fc2.weight",
      "model.text_model.layers.0.self_attn.q_proj.weight", "model.text_model.layers.1.mlp.down_proj.weight",
    ] {
      #expect(pack.packDescriptions[name] != nil, "\(name) is not packed")
    }
    let connector = Idefics3Vision.projectionName
    #expect(pack.packDescriptions[connector] == nil)
    #expect(try pack.floats(of: connector) != original.floats(of: connector))
    let skipped = try Checkpoint.open(skipOutput).source
    #expect(try skipped.floats(of: connector) == original.floats(of: connector))

    let refitCosine = try featureCosine(pack: refitOutput, images: images)
    let skipCosine = try featureCosine(pack: skipOutput, images: images)
    #expect(refitCosine > skipCosine, "refit \(refitCosine), stage 1 alone \(skipCosine)")

    // The pack runs whole: finite logits for a prompt with the image.
    let model = try Self.model(pack)
    let pixels = try SpeedQStage1.images(inFolder: images.path, preprocessor: model.preprocessor, limit: 1)[0]
    let image = try #require(model.imageTokenIndex)
    let logits = try model.logits(tokens: [52, image, 2599, 762], pixels: pixels)
    #expect(logits.rows == 7)
    #expect(logits.elements.allSatisfy { $0.isFinite })

    // Again: stages 1 and 2 come from their files.
    let again = try runTool(
      "qconvert", arguments(output: refitOutput, images: images.path, checkpoint: checkpoint) + ["--force"])
    #expect(again.status == 0, "\(again.stderr)")
    #expect(again.stderr.contains("projector refit on 16 tokens of 4 images (resumed)"), "\(again.stderr)")
    let resumed = try Checkpoint.open(refitOutput).source
    #expect(try resumed.floats(of: connector) == pack.floats(of: connector))
  }

  /// `qinspect --generate` with `<image>` in the prompt: the tokenizer's markers around the
  /// image rows, greedy tokens as transformers gives them.
  @Test func qinspectGeneratesWithAnImage() throws {
    let data = try Data(contentsOf: fixturesDirectory.appendingPathComponent("idefics3/expected.json"))
    let expected = try JSONDecoder().decode(Expected.self, from: data)
    let image = fixturesDirectory.appendingPathComponent(expected.image).path
    for testCase in expected.cases {
      let run = try runTool(
        "qinspect",
        [
          Self.model, "--format", "json", "--generate", testCase.prompt, "--image", image, "--max-tokens",
          "\(testCase.generated.count)",
        ])
      #expect(run.status == 0, "\(run.stderr)")
      let report = try #require(try JSONDecoder().decode([Report].self, from: Data(run.stdout.utf8)).first)
      #expect(report.generation?.completion == testCase.completion, "\(testCase.name)")
      #expect(report.generation?.tokens == testCase.generated.count)
    }
  }

  @Test func qinspectShowsTheComponents() throws {
    let run = try runTool("qinspect", [Self.model])
    #expect(run.status == 0, "\(run.stderr)")
    #expect(run.stdout.contains("architecture: idefics3 (vision-language)"))
    for component in ["language-model       21", "projector             1", "vision-tower         37"] {
      #expect(run.stdout.contains(component), "\(run.stdout)")
    }
  }
}
