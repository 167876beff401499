import Testing

@testable import QFormats

/// Names alone (no config.json) place the tensors of a decoder saved without `model.`, of a
/// multimodal wrapper's language model saved without its vision tower, and of a BERT encoder.
@Suite struct ArchitectureNamingTests {
  struct Case: CustomTestStringConvertible, Sendable {
    var id: String
    var prefix: String
    var family: ModelFamily
    var testDescription: String { id }
  }

  static func decoder(_ prefix: String) -> [TensorInfo] {
    var names = [prefix + "embed_tokens.weight", prefix + "norm.weight"]
    for layer in 0..<2 {
      for member in [
        "self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
        "mlp.down_proj",
      ] {
        names.append("\(prefix)layers.\(layer).\(member).weight")
      }
      names.append("\(prefix)layers.\(layer).input_layernorm.weight")
    }
    return names.map {
      TensorInfo(name: $0, dtype: .f32, shape: $0.hasSuffix("norm.weight") ? [8] : [8, 8])
    }
  }

  static let decoders = [
    Case(id: "AutoModel, no prefix", prefix: "", family: .llama),
    Case(id: "CausalLM", prefix: "model.", family: .llama),
    Case(id: "LLaVA before transformers 4.52", prefix: "language_model.model.", family: .llava),
    Case(id: "multimodal since transformers 4.52", prefix: "model.language_model.", family: .llava),
  ]

  @Test(arguments: decoders) func decoderTensorsAreTheLanguageModel(_ c: Case) {
    let tensors = Self.decoder(c.prefix)
    let summary = ArchitectureSummary.recognise(config: nil, tensors: tensors)
    #expect(summary.family == c.family)
    #expect(summary.languageFamily == .llama)
    for tensor in tensors {
      #expect(summary.component(of: tensor.name) == .languageModel, "\(tensor.name)")
    }
    #expect(summary.language?.layerCount == 2)
  }

  @Test(arguments: ["", "bert."]) func bertEncodersAreTextEncoders(_ prefix: String) {
    let names = [
      "embeddings.word_embeddings.weight", "encoder.layer.0.attention.self.query.weight",
      "encoder.layer.0.attention.output.dense.weight", "encoder.layer.0.output.dense.weight",
      "encoder.layer.1.attention.self.query.weight",
    ].map { prefix + $0 }
    let summary = ArchitectureSummary.recognise(
      config: nil, tensors: names.map { TensorInfo(name: $0, dtype: .f32, shape: [8, 8]) })
    #expect(summary.family == .bert)
    #expect(summary.kind == .textEncoder)
    for name in names { #expect(summary.component(of: name) == .languageModel, "\(name)") }
  }
}
