import Foundation
import Testing
@testable import QFormats

private func expectSizes(
  _ actual: HyperParameters?, _ expected: ArchitectureFixture.Sizes?, namesOnly: Bool,
  _ what: String
) {
  guard let expected else {
    #expect(actual == nil, "\(what): unexpected sizes \(String(describing: actual))")
    return
  }
  guard let actual else {
    Issue.record("\(what): no sizes")
    return
  }
  #expect(actual.hiddenSize == expected.hidden_size, "\(what) hidden size")
  #expect(actual.layerCount == expected.layer_count, "\(what) layer count")
  #expect(actual.vocabSize == expected.vocab_size, "\(what) vocab size")
  #expect(actual.intermediateSize == expected.intermediate_size, "\(what) intermediate size")
  if namesOnly {
    // Head counts follow from shapes only in some layouts; when given they must be right.
    if let heads = actual.attentionHeads { #expect(heads == expected.attention_heads, "\(what) heads") }
    if let kv = actual.keyValueHeads { #expect(kv == expected.key_value_heads, "\(what) kv heads") }
    if let headDim = actual.headDim { #expect(headDim == expected.head_dim, "\(what) head dim") }
  } else {
    #expect(actual.attentionHeads == expected.attention_heads, "\(what) heads")
    #expect(actual.keyValueHeads == expected.key_value_heads, "\(what) kv heads")
    #expect(actual.headDim == expected.head_dim, "\(what) head dim")
  }
}

private func expectParts(_ summary: ArchitectureSummary, _ fixture: ArchitectureFixture) {
  for (name, component) in fixture.expected.components ?? [:] {
    #expect(summary.component(of: name).rawValue == component, "component of \(name)")
  }
  for (name, role) in fixture.expected.roles ?? [:] {
    #expect(summary.role(of: name).rawValue == role, "role of \(name)")
  }
  // A vision-language model has all three parts, and nothing falls outside them.
  if summary.kind == .visionLanguage {
    let components = Set(fixture.tensors.map { summary.component(of: $0.name) })
    #expect(components == [.visionTower, .projector, .languageModel])
  }
}

@Suite struct ArchitectureTests {
  @Test(arguments: try ArchitectureFixture.all())
  func recognisesWithConfig(_ fixture: ArchitectureFixture) throws {
    let summary = ArchitectureSummary.recognise(config: try fixture.modelConfig(), tensors: fixture.tensors)
    let expected = fixture.expected
    #expect(summary.family.rawValue == expected.family)
    #expect(summary.kind.rawValue == expected.kind)
    #expect(summary.languageFamily?.rawValue == expected.language_family)
    #expect(summary.visionFamily?.rawValue == expected.vision_family)
    #expect(summary.usedConfig)
    expectSizes(summary.language, expected.language, namesOnly: false, "language")
    expectSizes(summary.vision, expected.vision, namesOnly: false, "vision")
    expectParts(summary, fixture)
  }

  @Test(arguments: try ArchitectureFixture.all())
  func recognisesFromNamesAlone(_ fixture: ArchitectureFixture) throws {
    let summary = ArchitectureSummary.recognise(config: nil, tensors: fixture.tensors)
    let expected = fixture.expected
    #expect(summary.family.rawValue == expected.names_only?.family ?? expected.family)
    #expect(summary.kind.rawValue == expected.kind)
    #expect(
      summary.languageFamily?.rawValue == expected.names_only?.language_family ?? expected.language_family)
    #expect(summary.visionFamily?.rawValue == expected.vision_family)
    #expect(!summary.usedConfig)
    expectSizes(summary.language, expected.language, namesOnly: true, "language")
    expectSizes(summary.vision, expected.vision, namesOnly: true, "vision")
    expectParts(summary, fixture)
  }

  /// A config without tensors still gives family, sizes and a layout to classify names by.
  @Test func configAloneIsEnough() throws {
    let fixture = try ArchitectureFixture.load("qwen2-vl-2b.json")
    let summary = ArchitectureSummary.recognise(config: try fixture.modelConfig(), tensors: [])
    #expect(summary.family == .qwen2VL)
    #expect(summary.language?.layerCount == 28)
    #expect(summary.vision?.layerCount == 32)
    #expect(summary.component(of: "visual.merger.mlp.0.weight") == .projector)
    #expect(summary.component(of: "model.layers.0.self_attn.q_proj.weight") == .languageModel)
  }

  /// Since transformers 4.52 LLaVA-style checkpoints put everything under `model.`.
  @Test func newLlavaLayout() {
    let tensors = [
      TensorInfo(name: "model.vision_tower.vision_model.embeddings.patch_embedding.weight", dtype: .bf16, shape: [1024, 3, 14, 14]),
      TensorInfo(name: "model.vision_tower.vision_model.encoder.layers.0.mlp.fc1.weight", dtype: .bf16, shape: [4096, 1024]),
      TensorInfo(name: "model.multi_modal_projector.linear_1.weight", dtype: .bf16, shape: [4096, 1024]),
      TensorInfo(name: "model.language_model.embed_tokens.weight", dtype: .bf16, shape: [32064, 4096]),
      TensorInfo(name: "model.language_model.layers.31.mlp.up_proj.weight", dtype: .bf16, shape: [11008, 4096]),
      TensorInfo(name: "lm_head.weight", dtype: .bf16, shape: [32064, 4096]),
    ]
    let summary = ArchitectureSummary.recognise(config: nil, tensors: tensors)
    #expect(summary.family == .llava)
    #expect(summary.kind == .visionLanguage)
    #expect(summary.language?.layerCount == 32)
    #expect(summary.language?.hiddenSize == 4096)
    #expect(summary.vision?.hiddenSize == 1024)
    #expect(summary.component(of: "model.multi_modal_projector.linear_1.weight") == .projector)
    #expect(summary.component(of: "lm_head.weight") == .languageModel)
  }

  /// Gemma 3 with vision uses LLaVA's prefixes and a bare projection matrix.
  @Test func gemma3WithVision() {
    let tensors = [
      TensorInfo(name: "vision_tower.vision_model.embeddings.patch_embedding.weight", dtype: .bf16, shape: [1152, 3, 14, 14]),
      TensorInfo(name: "vision_tower.vision_model.encoder.layers.26.mlp.fc1.weight", dtype: .bf16, shape: [4304, 1152]),
      TensorInfo(name: "multi_modal_projector.mm_input_projection_weight", dtype: .bf16, shape: [1152, 2560]),
      TensorInfo(name: "multi_modal_projector.mm_soft_emb_norm.weight", dtype: .bf16, shape: [1152]),
      TensorInfo(name: "language_model.model.embed_tokens.weight", dtype: .bf16, shape: [262208, 2560]),
      TensorInfo(name: "language_model.model.layers.33.pre_feedforward_layernorm.weight", dtype: .bf16, shape: [2560]),
      TensorInfo(name: "language_model.model.layers.33.self_attn.q_norm.weight", dtype: .bf16, shape: [256]),
      TensorInfo(name: "language_model.model.layers.33.self_attn.q_proj.weight", dtype: .bf16, shape: [2048, 2560]),
      TensorInfo(name: "language_model.model.layers.33.self_attn.k_proj.weight", dtype: .bf16, shape: [1024, 2560]),
    ]
    let summary = ArchitectureSummary.recognise(config: nil, tensors: tensors)
    #expect(summary.family == .gemma3)
    #expect(summary.kind == .visionLanguage)
    #expect(summary.languageFamily == .gemma3)
    #expect(summary.visionFamily == .siglip)
    #expect(summary.language?.layerCount == 34)
    #expect(summary.language?.attentionHeads == 8)
    #expect(summary.language?.keyValueHeads == 4)
    #expect(summary.vision?.layerCount == 27)
    #expect(summary.role(of: "multi_modal_projector.mm_soft_emb_norm.weight") == .projection)
  }

  /// A per-head query norm (Qwen3, Gemma 3) gives the head size, and with it the head counts.
  @Test func headsFromQueryNorm() {
    let tensors = [
      TensorInfo(name: "model.embed_tokens.weight", dtype: .bf16, shape: [151936, 1024]),
      TensorInfo(name: "model.layers.0.self_attn.q_proj.weight", dtype: .bf16, shape: [2048, 1024]),
      TensorInfo(name: "model.layers.0.self_attn.k_proj.weight", dtype: .bf16, shape: [1024, 1024]),
      TensorInfo(name: "model.layers.0.self_attn.q_norm.weight", dtype: .bf16, shape: [128]),
    ]
    let summary = ArchitectureSummary.recognise(config: nil, tensors: tensors)
    #expect(summary.language?.headDim == 128)
    #expect(summary.language?.attentionHeads == 16)
    #expect(summary.language?.keyValueHeads == 8)
  }

  @Test func unknownNamesAreUnknown() {
    let summary = ArchitectureSummary.recognise(
      config: nil, tensors: [TensorInfo(name: "weights", dtype: .f32, shape: [3])])
    #expect(summary.family == .unknown)
    #expect(summary.kind == .unknown)
    #expect(summary.component(of: "weights") == .other)
    #expect(ArchitectureSummary.recognise(config: nil, tensors: []).family == .unknown)
  }

  /// The real SmolLM2 list collapses to one line per per-layer tensor.
  @Test func realDecoderCollapses() throws {
    let fixture = try ArchitectureFixture.load("smollm2-135m.json")
    let groups = LayerPattern.collapse(fixture.tensors.map(\.name))
    let indexed = groups.filter(\.isIndexed)
    #expect(indexed.count == 9)
    #expect(indexed.allSatisfy { $0.count == 30 && $0.layerRangeDescription == "0-29" })
    #expect(groups.filter { !$0.isIndexed }.map(\.pattern).sorted() == ["model.embed_tokens.weight", "model.norm.weight"])
  }
}
