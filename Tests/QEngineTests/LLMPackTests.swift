import Foundation
import QCompute
import QFormats
import Testing

@testable import QEngine

/// tiny-llama packed (rtn 4-bit g32): the low-bit kernel against the dequantized dense weights.
@Suite struct LLMPackTests {
  @Test func packedModelMatchesItsDequantizedCopy() throws {
    let source = try LLMFixtures.source("tiny-llama")
    let config = try LLMFixtures.config("tiny-llama/config.json")
    let spec = PackSpec(bits: 4, groupSize: 32, grid: .affine, method: .rtn)
    let tensors = try source.tensors.map { info in
      (info: info, values: try source.floats(of: info.name), spec: info.shape.count == 2 ? Optional(spec) : nil)
    }
    let path = try LLMFixtures.writePack(tensors)
    defer { try? FileManager.default.removeItem(atPath: path) }
    let packFile = try SafetensorsFile(path: path)
    let packed = try DecoderModel(source: packFile, config: config)
    let dense = try DecoderModel(source: packFile, config: config, dequantizePacks: true)
    #expect(packed.residentWeightBytes * 3 < dense.residentWeightBytes)
    let tokens = [1, 17, 200, 33, 4, 90, 91, 255, 0, 12]
    let ours = try packed.logits(tokens: tokens)
    let reference = try dense.logits(tokens: tokens)
    for (a, b) in zip(ours.elements, reference.elements) { #expect(abs(a - b) <= 1e-5) }
    // And the pack is a different model from the original: the test would see a wrong kernel.
    let original = try DecoderModel(source: source, config: config).logits(tokens: tokens)
    #expect(zip(original.elements, reference.elements).contains { abs($0 - $1) > 1e-4 })
    #expect(try packed.generate(prompt: [1, 2, 3], maxTokens: 4) == dense.generate(prompt: [1, 2, 3], maxTokens: 4))
  }
}
