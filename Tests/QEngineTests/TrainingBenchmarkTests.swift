import Foundation
import QFormats
import Testing

@testable import QEngine

#if !DEBUG
  /// One forward and backward pass of a real model on 512 tokens, with full gradients; the model
  /// folder is read from `TRAINING_MODEL` (disabled without it). Release only.
  @Suite struct TrainingBenchmarkTests {
    @Test(
      .enabled(
        if: ProcessInfo.processInfo.environment["TRAINING_MODEL"] != nil, "needs TRAINING_MODEL, a model folder"))
    func forwardBackwardOf512Tokens() throws {
      let path = try #require(ProcessInfo.processInfo.environment["TRAINING_MODEL"])
      let folder = URL(fileURLWithPath: (path as NSString).expandingTildeInPath)
      let checkpoint = try Checkpoint.open(folder.path)
      let config = try ModelConfig(data: try Data(contentsOf: folder.appending(path: "config.json")), location: folder.path)
      let decoder = try TrainableDecoder(source: checkpoint.source, config: config)
      let vocabulary = decoder.configuration.vocabularySize
      var generator = SeededGenerator(seed: 1)
      let tokens = (0..<513).map { _ in Int.random(in: 0..<vocabulary, using: &generator) }
      let clock = ContinuousClock()
      let start = clock.now
      let pass = try decoder.forward(tokens: Array(tokens.dropLast()))
      let forwardDone = clock.now
      let loss = try TrainingLoss.crossEntropy(
        logits: pass.logits.elements, vocabularySize: vocabulary, targets: Array(tokens.dropFirst()))
      let gradients = try decoder.backward(pass, dLogits: loss.gradient)
      let end = clock.now
      let status = (try? String(contentsOfFile: "/proc/self/status", encoding: .utf8)) ?? ""
      let peak = status.split(separator: "\n").first { $0.hasPrefix("VmHWM") } ?? "VmHWM unknown"
      print(
        "training 512 tokens: forward \(forwardDone - start), backward \(end - forwardDone), loss \(loss.value),",
        "\(gradients.count) gradients, \(peak)")
      #expect(loss.value.isFinite)
      #expect(gradients.count == decoder.trainable.count)
    }
  }
#endif
