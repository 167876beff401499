import Testing
@testable import QFormats

@Suite struct LayerPatternTests {
  @Test func decoderLayersCollapse() throws {
    var names = ["model.embed_tokens.weight"]
    for layer in 0..<30 {
      names.append("model.layers.\(layer).mlp.down_proj.weight")
      names.append("model.layers.\(layer).input_layernorm.weight")
    }
    names.append("model.norm.weight")
    let groups = LayerPattern.collapse(names)
    #expect(groups.map(\.pattern) == [
      "model.embed_tokens.weight",
      "model.layers.#.mlp.down_proj.weight",
      "model.layers.#.input_layernorm.weight",
      "model.norm.weight",
    ])
    let down = groups[1]
    #expect(down.count == 30)
    #expect(down.layerIndices == Array(0..<30))
    #expect(down.layerRangeDescription == "0-29")
    #expect(down.names[17] == "model.layers.17.mlp.down_proj.weight")
    #expect(!groups[0].isIndexed && down.isIndexed)
  }

  @Test(arguments: [
    ("encoder.layer.3.attention.attention.query.weight", "encoder.layer.#.attention.attention.query.weight", [3]),
    ("blocks.0.attn.qkv.weight", "blocks.#.attn.qkv.weight", [0]),
    ("h.12.mlp.c_fc.weight", "h.#.mlp.c_fc.weight", [12]),
    ("visual.blocks.3.mlp.fc1.weight", "visual.blocks.#.mlp.fc1.weight", [3]),
    ("visual.merger.mlp.2.bias", "visual.merger.mlp.#.bias", [2]),
    ("model.layers.4.block_sparse_moe.experts.7.w1.weight", "model.layers.#.block_sparse_moe.experts.#.w1.weight", [4, 7]),
    ("mlp1.1.weight", "mlp1.#.weight", [1]),
    ("lm_head.weight", "lm_head.weight", []),
    ("layers.010.w", "layers.#.w", [10]),
  ])
  func segmentsOfDigitsBecomeHash(name: String, pattern: String, indices: [Int]) {
    let result = LayerPattern.pattern(of: name)
    #expect(result.pattern == pattern)
    #expect(result.indices == indices)
  }

  @Test func nestedIndicesKeepEveryNumber() {
    let names = (0..<2).flatMap { layer in
      (0..<3).map { "model.layers.\(layer).experts.\($0).w1.weight" }
    }
    let groups = LayerPattern.collapse(names)
    #expect(groups.count == 1)
    #expect(groups[0].indices == [[0, 0], [0, 1], [0, 2], [1, 0], [1, 1], [1, 2]])
    #expect(groups[0].layerIndices == [0, 1])
  }

  @Test func rangesDescribeGaps() {
    #expect(LayerPattern.describeRanges([]) == "")
    #expect(LayerPattern.describeRanges([4]) == "4")
    #expect(LayerPattern.describeRanges([0, 1, 2, 5, 7, 8]) == "0-2, 5, 7-8")
  }

  @Test func emptyAndOddNamesDoNotCrash() {
    #expect(LayerPattern.collapse([]).isEmpty)
    #expect(LayerPattern.pattern(of: "").pattern == "")
    #expect(LayerPattern.pattern(of: "a..1.").pattern == "a..#.")
    // Too long for Int: kept as written rather than trapping.
    #expect(LayerPattern.pattern(of: "x.99999999999999999999999.w").pattern == "x.99999999999999999999999.w")
  }
}
