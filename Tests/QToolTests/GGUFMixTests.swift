import QCompute
import QFormats
import Testing

@testable import QToolSupport

/// llama-quantize's per-tensor choices (`llama_tensor_get_type`), worked out by hand for
/// SmolLM2-135M's shapes: 30 layers, 576 wide (not whole 256-blocks), 1536-wide ffn_down rows,
/// 9 query heads on 3 key/value heads, tied embeddings.
@Suite("GGUF type mixes")
struct GGUFMixTests {
  static let smolLM2 = GGUFMixModel(layers: 30, heads: 9, keyValueHeads: 3, tiedEmbeddings: true)

  static func smolLM2Tensors() -> [(name: String, shape: [Int])] {
    var tensors: [(name: String, shape: [Int])] = [("token_embd.weight", [49152, 576])]
    for layer in 0..<30 {
      tensors += [
        ("blk.\(layer).attn_norm.weight", [576]),
        ("blk.\(layer).attn_q.weight", [576, 576]), ("blk.\(layer).attn_k.weight", [192, 576]),
        ("blk.\(layer).attn_v.weight", [192, 576]), ("blk.\(layer).attn_output.weight", [576, 576]),
        ("blk.\(layer).ffn_gate.weight", [1536, 576]), ("blk.\(layer).ffn_up.weight", [1536, 576]),
        ("blk.\(layer).ffn_down.weight", [576, 1536]),
      ]
    }
    return tensors + [("output_norm.weight", [576])]
  }

  func types(_ selection: GGUFTypeSelection, model: GGUFMixModel = smolLM2) -> [String: GGMLType] {
    let tensors = Self.smolLM2Tensors()
    let types = GGUFExport.storageTypes(for: tensors, model: model, selection: selection)
    return Dictionary(uniqueKeysWithValues: zip(tensors.map(\.name), types))
  }

  func layers(_ types: [String: GGMLType], _ part: String, _ type: GGMLType) -> [Int] {
    (0..<30).filter { types["blk.\($0).\(part).weight"] == type }
  }

  @Test func q4KMBumpsAttnVAndFFNDownOnTheUseMoreBitsLayers() {
    let types = types(.mix(.q4_k_m))
    // use_more_bits(i, 30): i < 3, i >= 26, or (i - 3) % 3 == 2.
    let more = [0, 1, 2, 5, 8, 11, 14, 17, 20, 23, 26, 27, 28, 29]
    #expect(layers(types, "ffn_down", .q6K) == more)
    #expect(layers(types, "ffn_down", .q4K) == (0..<30).filter { !more.contains($0) })
    // attn_v's Q6_K does not fit 576-wide rows and falls back to Q8_0; its Q4_K to Q5_0.
    #expect(layers(types, "attn_v", .q8_0) == more)
    #expect(layers(types, "attn_q", .q5_0).count == 30)
    #expect(types["token_embd.weight"] == .q8_0)
    #expect(types["output_norm.weight"] == .f32)
  }

  @Test func q3KMAndQ3KL() {
    let medium = types(.mix(.q3_k_m))
    #expect(layers(medium, "attn_v", .q5_1) == [0, 1])
    #expect(layers(medium, "attn_v", .q5_0).count == 28)
    #expect(layers(medium, "ffn_down", .q5K) == [0])
    #expect(layers(medium, "ffn_down", .q4K).count == 29)
    #expect(layers(medium, "attn_output", .q5_0).count == 30)
    #expect(layers(medium, "ffn_up", .q4_0).count == 30)
    let large = types(.mix(.q3_k_l))
    #expect(layers(large, "ffn_down", .q5K).count == 30)
    #expect(layers(large, "attn_output", .q5_1).count == 30)
  }

  @Test func legacyMixesKeepTheTiedEmbeddingAtQ8_0() {
    for mix in [GGUFMix.q4_0, .q4_1, .q5_0, .q5_1] {
      let types = types(.mix(mix))
      #expect(types["token_embd.weight"] == .q8_0, "\(mix)")
      #expect(layers(types, "ffn_down", mix.defaultType.ggmlType).count == 30, "\(mix)")
      #expect(layers(types, "attn_v", mix.defaultType.ggmlType).count == 30, "\(mix)")
    }
    #expect(types(.mix(.q8_0)).values.allSatisfy { $0 == .q8_0 || $0 == .f32 })
  }

  @Test func q2KAndIQ4NL() {
    let q2 = types(.mix(.q2_k))
    #expect(layers(q2, "ffn_down", .q3K).count == 30)
    #expect(layers(q2, "attn_v", .q4_0).count == 30)  // Q3_K (3 query heads per kv head) -> Q4_0
    #expect(layers(q2, "ffn_gate", .q4_0).count == 30)
    let iq4 = types(.mix(.iq4_nl))
    #expect(layers(iq4, "ffn_down", .q5K) == [0, 1, 2])
    #expect(layers(iq4, "attn_v", .iq4NL).count == 30)
    #expect(iq4["token_embd.weight"] == .q8_0)
  }

  @Test func pureUsesTheBaseTypeEverywhere() {
    let types = types(.pure(.q4_k_m))
    #expect(types["token_embd.weight"] == .q5_0)
    #expect(layers(types, "ffn_down", .q4K).count == 30)
    #expect(layers(types, "attn_v", .q5_0).count == 30)
  }

  @Test func untiedOutputTakesQ6KAndTheEmbeddingTheBaseType() {
    let tensors: [(name: String, shape: [Int])] = [
      ("token_embd.weight", [1000, 512]), ("output.weight", [1000, 512]),
    ]
    let model = GGUFMixModel(layers: 2, heads: 8, keyValueHeads: 8, tiedEmbeddings: false)
    #expect(
      GGUFExport.storageTypes(for: tensors, model: model, selection: .mix(.q4_k_s)) == [.q4K, .q6K])
    #expect(
      GGUFExport.storageTypes(for: tensors, model: model, selection: .mix(.q8_0)) == [.q8_0, .q8_0])
  }

  @Test func layerChoicesFollowLayerNumbersNotFileOrder() {
    // llama-quantize visits tensors by layer number (weight_name_comparer), so a file listing
    // blk.10 third (as convert_hf_to_gguf.py writes them) still has blk.0 to blk.3 first.
    let tensors: [(name: String, shape: [Int])] = [0, 1, 10, 11, 2, 3, 4, 5].map {
      ("blk.\($0).attn_v.weight", [256, 256])
    }
    let model = GGUFMixModel(layers: 8, heads: 8, keyValueHeads: 8, tiedEmbeddings: true)
    let types = GGUFExport.storageTypes(for: tensors, model: model, selection: .mix(.q4_k_s))
    #expect(types == [.q5K, .q5K, .q4K, .q4K, .q5K, .q5K, .q4K, .q4K])
    #expect(
      GGUFExport.visitingOrder(["blk.10.a", "token_embd.weight", "blk.2.b", "blk.2.a", "output.weight"])
        == [4, 1, 3, 2, 0])
  }

  /// With an importance matrix llama-quantize stores the first n_layer / 8 ffn_down tensors of a
  /// q4_0 or q5_0 mix as Q4_1 or Q5_1 (on SmolLM2: blk.0 to blk.2, as its file shows); without
  /// one, nothing changes.
  @Test(arguments: [(GGUFMix.q4_0, GGMLType.q4_0, GGMLType.q4_1), (.q5_0, .q5_0, .q5_1)])
  func anImportanceMatrixGuardsTheFirstFFNDownLayers(mix: GGUFMix, base: GGMLType, guarded: GGMLType) {
    let tensors = Self.smolLM2Tensors()
    let weighted = Dictionary(
      uniqueKeysWithValues: zip(
        tensors.map(\.name),
        GGUFExport.storageTypes(for: tensors, model: Self.smolLM2, selection: .mix(mix), weighted: true)))
    #expect(layers(weighted, "ffn_down", guarded) == [0, 1, 2])
    #expect(layers(weighted, "ffn_down", base) == Array(3..<30))
    #expect(layers(weighted, "ffn_up", base) == Array(0..<30))
    #expect(layers(types(.mix(mix)), "ffn_down", base) == Array(0..<30))
    // --gguf-pure keeps the base type, as llama-quantize --pure does.
    let pure = GGUFExport.storageTypes(for: tensors, model: Self.smolLM2, selection: .pure(mix), weighted: true)
    #expect(!pure.contains(guarded))
  }

  @Test func fallbacksFollowLlamaQuantize() {
    #expect(GGUFExport.fallback(.q6K, columns: 576) == .q8_0)
    #expect(GGUFExport.fallback(.q5K, columns: 576) == .q5_1)
    #expect(GGUFExport.fallback(.q4K, columns: 576) == .q5_0)
    #expect(GGUFExport.fallback(.q3K, columns: 576) == .q4_0)
    #expect(GGUFExport.fallback(.q2K, columns: 576) == .q4_0)
    #expect(GGUFExport.fallback(.q4K, columns: 20) == .f16)
    #expect(GGUFExport.fallback(.iq4NL, columns: 48) == .f16)
    #expect(GGUFExport.fallback(.q4K, columns: 512) == .q4K)
  }
}
