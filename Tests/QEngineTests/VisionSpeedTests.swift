import Foundation
import QEngine
import QFormats
import Testing

#if !DEBUG
  /// Times `VisionEncoder.forward` on a real tower, release builds only:
  /// `VISION_MODEL=~/.cache/qtoolchain-models/vit-s-focus-hf swift test -c release --filter VisionSpeed`.
  @Suite("VisionSpeed", .enabled(if: ProcessInfo.processInfo.environment["VISION_MODEL"] != nil))
  struct VisionSpeedTests {
    @Test func forwardOnRandomImage() throws {
      let folder = try #require(ProcessInfo.processInfo.environment["VISION_MODEL"])
      let config = try VisionConfig(
        ModelConfig(data: Data(contentsOf: URL(fileURLWithPath: folder + "/config.json")), location: folder))
      let encoder = try VisionEncoder(
        source: SafetensorsFile(path: folder + "/model.safetensors"), config: config, prefix: "")
      var generator = SystemRandomNumberGenerator()
      let size = 224
      let pixels = PixelTensor(
        channels: 3, height: size, width: size,
        values: (0..<(3 * size * size)).map { _ in Float.random(in: -2...2, using: &generator) })
      let runs = Int(ProcessInfo.processInfo.environment["VISION_RUNS"] ?? "") ?? 5
      var times: [Double] = []
      var tokens = 0
      for _ in 0..<(runs + 1) {
        let start = DispatchTime.now().uptimeNanoseconds
        let output = try encoder.forward(pixels: pixels)
        times.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6)
        tokens = output.tokenCount
        let finite = output.lastHiddenState.allSatisfy { $0.isFinite }
        #expect(finite)
      }
      let timed = times.dropFirst().sorted()
      print(
        String(
          format: "VisionSpeed: %d tokens, forward min %.1f ms, median %.1f ms (first %.1f ms)", tokens,
          timed.first ?? 0, timed[timed.count / 2], times[0]))
    }
  }
#endif
