import Foundation
import QEngine
import QFormats
import Testing

/// The SigLIP vision tower (no class token, biased patches, tanh GELU, post-layer norm) against
/// the float64 numpy forward pass of `Fixtures/make_siglip_fixtures.py`.
@Suite("SigLIP vision tower")
struct VisionSigLIPTests {
  @Test func matchesNumpy() throws {
    let data = try Data(contentsOf: URL(fileURLWithPath: VisionFixtures.path("vision/tiny-siglip/config.json")))
    let config = try VisionConfig(ModelConfig(data: data, location: "tiny-siglip"))
    #expect(config.kind == .siglip)
    let encoder = try VisionEncoder(
      source: VisionFixtures.open("vision/tiny-siglip/model.safetensors"), config: config, prefix: "vision_model.")
    let expected = try VisionFixtures.open("vision/siglip-expected.safetensors")
    let output = try encoder.forward(pixels: try PixelTensor.load(from: expected, tensor: "siglip.pixels"))
    #expect(output.tokenCount == 16)
    let hiddenShape = try #require(expected.info(named: "siglip.hidden")).shape
    #expect(hiddenShape == [Int]([output.hiddenStates.count, output.tokenCount, output.hiddenSize]))
    let hidden = try expected.floats(of: "siglip.hidden")
    let stride = output.tokenCount * output.hiddenSize
    for (layer, state) in output.hiddenStates.enumerated() {
      let reference = Array(hidden[(layer * stride)..<((layer + 1) * stride)])
      #expect(VisionFixtures.maxAbsDifference(state, reference) < 1e-4, "hidden state \(layer)")
    }
    let last = try expected.floats(of: "siglip.last")
    #expect(VisionFixtures.maxAbsDifference(output.lastHiddenState, last) < 1e-4)
  }
}
