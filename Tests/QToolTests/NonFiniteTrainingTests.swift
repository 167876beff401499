import Foundation
import QCompute
import QEngine
import QFormats
import Testing

/// Calibration and training stop at the first NaN or infinity, naming where it is, instead of
/// carrying it into Gram matrices or optimizer moments.
@Suite struct NonFiniteTrainingTests {
  /// An infinite element of block 1's input norm makes that feature of every normed token
  /// infinite (`x / rms(x) * w` with `w = inf`); the q/k/v projections read it first.
  @Test(arguments: [0, 5, 63])
  func calibrationNamesTheLayerWhoseInputIsNotFinite(feature: Int) throws {
    let folder = fixturesDirectory.appendingPathComponent("tiny-chat")
    let source = try SafetensorsFile(path: folder.appendingPathComponent("model.safetensors").path)
    let configURL = folder.appendingPathComponent("config.json")
    let config = try ModelConfig(data: try Data(contentsOf: configURL), location: configURL.path)
    let norm = "model.layers.1.input_layernorm.weight"
    var weights = try source.floats(of: norm)
    try #require(feature < weights.count)
    weights[feature] = .infinity
    let overlay = try OverlayTensorSource(base: source, replacements: [norm: weights])
    let model = try DecoderModel(source: overlay, config: config)
    let collector = CalibrationCollector(model: model)
    let windows = [[1, 2, 3, 4], [5, 6, 7, 8]]
    let expected = "the input of 'model.layers.1.self_attn.q_proj.weight' holds"
    let position = "at token 0, feature \(feature) of window 0"
    #expect {
      _ = try collector.collectGrams(windows: windows)
    } throws: { error in
      guard case .invalidInput(let operation, let reason) = error as? DecoderError else { return false }
      return operation == "calibration" && reason.hasPrefix(expected) && reason.hasSuffix(position)
    }
    // The sequential scheme reports the same at block 1.
    try collector.start(windows: windows)
    _ = try collector.grams(of: [.attentionInput])
    try collector.advance()
    #expect {
      _ = try collector.grams(of: [.attentionInput])
    } throws: { error in
      guard case .invalidInput(_, let reason) = error as? DecoderError else { return false }
      return reason.hasPrefix(expected) && reason.hasSuffix(position)
    }
  }

  @Test(arguments: [Float.nan, .infinity, -.infinity])
  func adamWRefusesANonFiniteGradientBeforeChangingAnything(value: Float) throws {
    var optimizer = AdamW()
    let start: [String: [Float]] = ["a.weight": [1, 2, 3], "b.weight": [4, 5, 6, 7]]
    var parameters = start
    try optimizer.update(&parameters, gradients: ["a.weight": [0.1, 0.2, 0.3], "b.weight": [1, 1, 1, 1]], learningRate: 0.1)
    let afterOne = parameters
    let moments = optimizer.firstMoments
    let gradients: [String: [Float]] = ["a.weight": [0.1, 0.2, 0.3], "b.weight": [1, 1, value, 1]]
    #expect {
      try optimizer.update(&parameters, gradients: gradients, learningRate: 0.1)
    } throws: { error in
      guard case .invalidInput(let operation, let reason) = error as? TrainingError else { return false }
      return operation == "AdamW step 2" && reason == "the gradient of parameter 'b.weight' holds \(value) at index 2"
    }
    #expect(parameters == afterOne)
    #expect(optimizer.step == 1)
    #expect(optimizer.firstMoments == moments)
    #expect(afterOne != start)
  }
}
