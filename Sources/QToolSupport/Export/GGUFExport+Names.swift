import QFormats

extension GGUFExport {
  /// Where an HF Llama tensor goes in GGUF, and whether its rows take llama.cpp's rope permutation.
  struct MappedTensor {
    var source: TensorInfo
    var name: String
    /// Heads for `permuteRows`; `nil` when the rows stay in order.
    var permuteHeads: Int?
  }

  /// Per-layer HF module paths and their GGUF names, as llama.cpp's tensor map has them.
  static let layerNames: [String: String] = [
    "self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v",
    "self_attn.o_proj": "attn_output", "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up",
    "mlp.down_proj": "ffn_down", "input_layernorm": "attn_norm",
    "post_attention_layernorm": "ffn_norm",
  ]

  static let globalNames: [String: String] = [
    "model.embed_tokens.weight": "token_embd.weight", "model.norm.weight": "output_norm.weight",
    "lm_head.weight": "output.weight",
  ]

  /// The GGUF name of an HF tensor (`model.layers.3.mlp.up_proj.weight` -> `blk.3.ffn_up.weight`),
  /// or `nil` for one llama.cpp has no place for.
  static func ggufName(of name: String) -> String? {
    if let global = globalNames[name] { return global }
    let parts = name.split(separator: ".", omittingEmptySubsequences: false)
    guard parts.count >= 5, parts[0] == "model", parts[1] == "layers", let layer = Int(parts[2]),
      layer >= 0
    else { return nil }
    let module = parts[3..<(parts.count - 1)].joined(separator: ".")
    let suffix = parts[parts.count - 1]
    guard suffix == "weight" || suffix == "bias", let mapped = layerNames[module] else { return nil }
    return "blk.\(layer).\(mapped).\(suffix)"
  }

  /// llama.cpp's `LlamaModel.permute`: within each head, rows `[2, headDim/2]` become
  /// `[headDim/2, 2]`, turning HF's rotate-half rope layout into ggml's interleaved one.
  ///
  /// Works on any tensor whose first dimension is `heads * headDim` (weights and biases).
  static func permuteRows<Element>(_ values: [Element], rows: Int, heads: Int) -> [Element] {
    guard heads > 0, rows > 0, rows % (heads * 2) == 0 else { return values }
    let rowLength = values.count / rows
    let half = rows / heads / 2
    var out = values
    values.withUnsafeBufferPointer { source in
      out.withUnsafeMutableBufferPointer { target in
        for head in 0..<heads {
          let base = head * half * 2
          for index in 0..<half {
            for pair in 0..<2 {
              let from = (base + pair * half + index) * rowLength
              let to = (base + index * 2 + pair) * rowLength
              for column in 0..<rowLength { target[to + column] = source[from + column] }
            }
          }
        }
      }
    }
    return out
  }
}
