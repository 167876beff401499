import Foundation
import QCompute
import QEngine
import QFormats
import Testing

@testable import QToolSupport

/// `qconvert --method speedq --calib-images`: stage 2, the projector's second linear refitted to
/// the quantized vision tower, between stage 1 and stage 3.
@Suite struct QConvertSpeedQProjectorTests {
  let model = fixturesDirectory.appendingPathComponent("vlm/tiny-llava-chat").path
  let text = fixturesDirectory.appendingPathComponent("tiny-chat.sample.txt").path

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
      model, "-o", output, "--bits", "2", "--method", "speedq", "--calib", text, "--calib-context", "32",
      "--calib-windows", "2", "--qat-steps", "1", "--calib-images", images, "--qat-checkpoint", checkpoint,
      "--vision-iterations", "20",
    ]
  }

  /// `GELU(x W1ᵀ + b1) W2ᵀ + b2` per token, exact erf GELU, in Double.
  static func project(
    _ features: [Float], width: Int, _ w1: [Float], _ b1: [Float], _ w2: [Float], _ b2: [Float]
  ) -> [[Double]] {
    let hidden = b1.count
    let outputs = b2.count
    return (0..<(features.count / width)).map { token in
      let h = (0..<hidden).map { j -> Double in
        var x = Double(b1[j])
        for i in 0..<width { x += Double(features[token * width + i]) * Double(w1[j * width + i]) }
        return 0.5 * x * (1 + erf(x / 2.0.squareRoot()))
      }
      return (0..<outputs).map { o in
        var y = Double(b2[o])
        for j in 0..<hidden { y += h[j] * Double(w2[o * hidden + j]) }
        return y
      }
    }
  }

  static func meanCosine(_ a: [[Double]], _ b: [[Double]]) -> Double {
    let cosines = zip(a, b).map { x, y in
      let dot = zip(x, y).reduce(0) { $0 + $1.0 * $1.1 }
      return dot / (x.reduce(0) { $0 + $1 * $1 } * y.reduce(0) { $0 + $1 * $1 }).squareRoot()
    }
    return cosines.reduce(0, +) / Double(cosines.count)
  }

  /// The projector output cosine of a pack to the FP model on the calibration images: the
  /// pack's tower (dequantized) and projector against the FP tower and projector.
  func projectorCosine(pack: String, images folder: URL) throws -> Double {
    let fpSource = try Checkpoint.open(model).source
    let packed = try PackedCheckpoint(wrapping: try Checkpoint.open(pack).source)
    let config = try ModelConfig(data: try Data(contentsOf: URL(fileURLWithPath: model + "/config.json")), location: model)
    let vision = try VisionConfig(try #require(config.visionConfig))
    let prefix = "vision_tower.vision_model."
    let images = try SpeedQStage1.images(inFolder: folder.path, preprocessor: .fallback(for: vision))
    let width = vision.hiddenSize
    func outputs(_ source: any TensorSource) throws -> [[Double]] {
      let encoder = try VisionEncoder(source: source, config: vision, prefix: prefix)
      // vision_feature_layer -2, class token dropped ("default").
      let features = try SpeedQStage1.features(
        encoder: encoder, prefix: prefix, images: images, replacing: [:], hiddenState: -2)
      let p = "multi_modal_projector."
      return try features.flatMap {
        Self.project(
          Array($0.dropFirst(width)), width: width, try source.floats(of: p + "linear_1.weight"),
          try source.floats(of: p + "linear_1.bias"), try source.floats(of: p + "linear_2.weight"),
          try source.floats(of: p + "linear_2.bias"))
      }
    }
    return Self.meanCosine(try outputs(fpSource), try outputs(packed))
  }

  @Test func refitsTheProjectorBetweenStagesOneAndThree() throws {
    let work = FileManager.default.temporaryDirectory.appending(path: "qconvert-stage2-\(UUID().uuidString)")
    defer { try? FileManager.default.removeItem(at: work) }
    let images = try imageFolder(in: work)
    let refitOutput = work.appending(path: "refit").path
    let skipOutput = work.appending(path: "skip").path
    let checkpoint = work.appending(path: "state.safetensors").path
    let refitArguments = arguments(output: refitOutput, images: images.path, checkpoint: checkpoint)
    let run = try runTool("qconvert", refitArguments)
    #expect(run.status == 0, "\(run.stderr)")
    let stageOne = try #require(run.stderr.range(of: "vision tower:")?.lowerBound)
    let stageTwo = try #require(run.stderr.range(of: "projector refit on 64 tokens of 4 images;")?.lowerBound)
    let stageThree = try #require(run.stderr.range(of: "step 1/1")?.lowerBound)
    #expect(stageOne < stageTwo && stageTwo < stageThree)
    #expect(FileManager.default.fileExists(atPath: checkpoint + ".stage2"))

    let skip = try runTool(
      "qconvert",
      arguments(output: skipOutput, images: images.path, checkpoint: work.appending(path: "other.safetensors").path)
        + ["--no-projector-refit"])
    #expect(skip.status == 0, "\(skip.stderr)")
    #expect(!skip.stderr.contains("projector refit"))
    #expect(!FileManager.default.fileExists(atPath: work.appending(path: "other.safetensors.stage2").path))

    let refit = try SafetensorsFile(path: refitOutput + "/model.safetensors")
    let skipped = try SafetensorsFile(path: skipOutput + "/model.safetensors")
    let original = try Checkpoint.open(model).source
    for name in ["linear_1.weight", "linear_1.bias", "linear_2.weight", "linear_2.bias"] {
      let tensor = "multi_modal_projector." + name
      // Without the refit the projector is the FP one, as after stage 1 alone.
      #expect(try skipped.floats(of: tensor) == original.floats(of: tensor))
      if name.hasPrefix("linear_2") {
        #expect(try refit.floats(of: tensor) != original.floats(of: tensor))
        #expect(refit.info(named: tensor)?.dtype == original.info(named: tensor)?.dtype)
      } else {
        #expect(try refit.floats(of: tensor) == original.floats(of: tensor))
      }
    }
    // The tower is stage 1's either way.
    for info in refit.tensors where info.name.hasPrefix("vision_tower.") {
      #expect(
        try refit.withRawBytes(of: info.name) { Array($0) } == skipped.withRawBytes(of: info.name) { Array($0) },
        "\(info.name)")
    }
    let refitCosine = try projectorCosine(pack: refitOutput, images: images)
    let skipCosine = try projectorCosine(pack: skipOutput, images: images)
    #expect(refitCosine > skipCosine, "refit \(refitCosine), stage 1 alone \(skipCosine)")

    // Again: the refit comes from the stage 2 file.
    let again = try runTool("qconvert", refitArguments + ["--force"])
    #expect(again.status == 0, "\(again.stderr)")
    #expect(again.stderr.contains("projector refit on 64 tokens of 4 images (resumed)"))
    let resumed = try SafetensorsFile(path: refitOutput + "/model.safetensors")
    #expect(try resumed.floats(of: "multi_modal_projector.linear_2.weight") == refit.floats(of: "multi_modal_projector.linear_2.weight"))
  }

  @Test func refitOfAnotherTowerIsNotResumed() throws {
    let work = FileManager.default.temporaryDirectory.appending(path: "qconvert-stage2-\(UUID().uuidString)")
    defer { try? FileManager.default.removeItem(at: work) }
    let images = try imageFolder(in: work)
    let checkpoint = work.appending(path: "state.safetensors").path
    let first = try runTool(
      "qconvert", arguments(output: work.appending(path: "first").path, images: images.path, checkpoint: checkpoint))
    #expect(first.status == 0, "\(first.stderr)")
    // Stage 1 again from scratch with round-to-nearest codes: the saved refit no longer fits.
    try FileManager.default.removeItem(atPath: checkpoint + ".stage1")
    try? FileManager.default.removeItem(atPath: checkpoint)
    let second = try runTool(
      "qconvert",
      arguments(output: work.appending(path: "second").path, images: images.path, checkpoint: checkpoint)
        + ["--vision-iterations", "0"])
    #expect(second.status == 1)
    #expect(second.stderr.contains("was saved by another stage 2 run"), "\(second.stderr)")
  }

  @Test func skippingTheRefitNeedsImages() throws {
    let run = try runTool("qconvert", [model, "-o", "/nonexistent/unused", "--no-projector-refit"])
    #expect(run.status == 64)
    #expect(run.stderr.contains("'--no-projector-refit' applies to '--calib-images' only"))
  }
}
