import Foundation
import QCompute
import QEngine
import QFormats
import Testing

@testable import QToolSupport

/// Stage 3 on a language model inside a multimodal wrapper whose untied head sits at the top
/// level (Idefics3's `model.text_model.` beside `lm_head.weight`): the frozen head is returned
/// under the name the checkpoint and the pack give it.
@Suite struct SpeedQStage3WrapperTests {
  @Test func topLevelHeadKeepsItsName() throws {
    let folder = fixturesDirectory.appending(path: "idefics3/tiny-idefics3")
    let source = try SafetensorsFile(path: folder.appending(path: "model.safetensors").path)
    let configPath = folder.appending(path: "config.json")
    let config = try ModelConfig(data: Data(contentsOf: configPath), location: configPath.path)
    let prefix = ModelEvaluation.languageModelPrefix(of: source)
    #expect(prefix == "model.text_")
    let teacher = try DecoderModel(source: source, config: config, prefix: prefix)
    // The tiny width (16) takes an 8-bit grid of group 16; the head shares the embedding's grid.
    let spec = PackSpec(bits: 8, groupSize: .elements(16), grid: .symmetric, method: .rtn)
    var configuration = SpeedQConfiguration(grid: .w2g16g16, steps: 0)
    configuration.embedding = .packed(spec)
    configuration.keptLinears = Set(
      (0..<2).flatMap {
        [
          "model.layers.\($0).self_attn.k_proj.weight",
          "model.layers.\($0).self_attn.v_proj.weight",
        ]
      })
    let stage = try SpeedQStage3(
      teacher: teacher, source: source, config: config, prefix: prefix,
      configuration: configuration,
      windows: [[52, 2599, 762, 85, 260, 273]])
    let results = try stage.run()
    let head = try #require(results["lm_head.weight"])
    #expect(results["model.text_lm_head.weight"] == nil)
    #expect(results["model.text_model.embed_tokens.weight"] != nil)
    let info = try #require(source.info(named: "lm_head.weight"))
    let expected = try source.floats(of: "lm_head.weight").withUnsafeBufferPointer {
      try PackEncoder.quantize($0, info: info, spec: spec, location: "test")
    }
    #expect(head == expected)
  }
}
