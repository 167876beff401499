import Foundation
import Testing

/// `qconvert --method speedq --calib-images`: stage 1 on a LLaVA checkpoint's vision tower.
@Suite struct QConvertSpeedQVisionTests {
  let model = fixturesDirectory.appendingPathComponent("vlm/tiny-llava-chat").path
  let text = fixturesDirectory.appendingPathComponent("tiny-chat.sample.txt").path

  /// A folder with the decodable fixture images.
  func imageFolder() throws -> URL {
    let folder = FileManager.default.temporaryDirectory.appending(path: "qconvert-images-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    for name in ["rgb.png", "colour.jpg", "grey.jpg", "alpha.png"] {
      try FileManager.default.copyItem(
        at: fixturesDirectory.appending(path: "images/\(name)"), to: folder.appending(path: name))
    }
    return folder
  }

  @Test func quantizesTheVisionTowerBeforeTraining() throws {
    let images = try imageFolder()
    let work = FileManager.default.temporaryDirectory.appending(path: "qconvert-stage1-\(UUID().uuidString)")
    defer {
      try? FileManager.default.removeItem(at: images)
      try? FileManager.default.removeItem(at: work)
    }
    try FileManager.default.createDirectory(at: work, withIntermediateDirectories: true)
    let output = work.appending(path: "out").path
    let checkpoint = work.appending(path: "state.safetensors").path
    let arguments = [
      model, "-o", output, "--bits", "2", "--method", "speedq", "--calib", text, "--calib-context", "32",
      "--calib-windows", "2", "--qat-steps", "1", "--calib-images", images.path, "--qat-checkpoint", checkpoint,
      "--vision-iterations", "20",
    ]
    let run = try runTool("qconvert", arguments)
    #expect(run.status == 0, "\(run.stderr)")
    #expect(run.stderr.contains("vision block 2/2"))
    #expect(run.stderr.contains("12 linears on 4 images"))
    let stageOne = run.stderr.range(of: "vision tower:")?.lowerBound
    let stageThree = run.stderr.range(of: "step 1/1")?.lowerBound
    #expect(stageOne != nil && stageThree != nil && stageOne! < stageThree!)
    #expect(FileManager.default.fileExists(atPath: checkpoint + ".stage1"))
    let verify = try runTool("qinspect", [output, "--verify"])
    #expect(verify.status == 0, "\(verify.stderr)")
    // Again: both blocks come from the stage 1 checkpoint.
    let again = try runTool("qconvert", arguments + ["--force"])
    #expect(again.status == 0, "\(again.stderr)")
    #expect(again.stderr.contains("vision block 2/2 output error") && again.stderr.contains("(resumed)"))
  }

  @Test func calibImagesNeedSpeedQ() throws {
    let run = try runTool("qconvert", [model, "-o", "/nonexistent/unused", "--calib-images", "/tmp"])
    #expect(run.status == 64)
    #expect(run.stderr.contains("'--calib-images' applies to '--method speedq' only"))
  }

  @Test func languageModelsHaveNoTowerToCalibrate() throws {
    let images = try imageFolder()
    defer { try? FileManager.default.removeItem(at: images) }
    let run = try runTool(
      "qconvert",
      [
        fixturesDirectory.appendingPathComponent("tiny-chat").path, "-o", "/nonexistent/unused", "--bits", "2",
        "--method", "speedq", "--calib", text, "--calib-context", "32", "--calib-windows", "2", "--qat-steps", "1",
        "--calib-images", images.path, "--quiet",
      ])
    #expect(run.status == 1)
    #expect(run.stderr.contains("not a vision-language model"))
  }
}
