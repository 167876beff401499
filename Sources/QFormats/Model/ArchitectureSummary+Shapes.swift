/// Sizes and roles read off tensor names and shapes.
extension ArchitectureSummary {
  /// Segment names after which the next number is a layer index.
  static let layerContainers: Set<Substring> = ["layers", "layer", "h", "blocks"]

  /// One more than the largest layer index, or `nil` when no name has one.
  static func layerCount(_ tensors: [TensorInfo]) -> Int? {
    var highest: Int?
    for tensor in tensors {
      let segments = tensor.name.split(separator: ".")
      for (position, segment) in segments.enumerated().dropLast()
      where layerContainers.contains(segment) {
        if let index = Int(segments[position + 1]), index >= 0 {
          highest = Swift.max(highest ?? index, index)
          break
        }
      }
    }
    return highest.map { $0 + 1 }
  }

  /// The first two-dimensional tensor whose name ends with one of the suffixes.
  private static func matrix(_ tensors: [TensorInfo], endingWith suffixes: [String]) -> [Int]? {
    for suffix in suffixes {
      if let found = tensors.first(where: { $0.name.hasSuffix(suffix) && $0.shape.count == 2 }) {
        return found.shape
      }
    }
    return nil
  }

  static func inferLanguageSizes(_ tensors: [TensorInfo], headDim knownHeadDim: Int?) -> HyperParameters {
    var sizes = HyperParameters()
    sizes.layerCount = layerCount(tensors)
    let embedding =
      matrix(tensors, endingWith: ["embed_tokens.weight", "word_embeddings.weight", "wte.weight"])
      ?? matrix(tensors, endingWith: ["lm_head.weight"])
    if let embedding {
      sizes.vocabSize = embedding[0]
      sizes.hiddenSize = embedding[1]
    }
    if let up = matrix(tensors, endingWith: ["mlp.gate_proj.weight", "mlp.up_proj.weight", "intermediate.dense.weight", "mlp.fc1.weight"]) {
      sizes.intermediateSize = up[0]
    } else if let fused = matrix(tensors, endingWith: ["mlp.gate_up_proj.weight"]), fused[0] % 2 == 0 {
      sizes.intermediateSize = fused[0] / 2
    }
    // Heads follow from the projections only when the head size is known: from the config,
    // or from a per-head query norm (Qwen3, Gemma 3).
    let qNorm = tensors.first { $0.name.hasSuffix("self_attn.q_norm.weight") && $0.shape.count == 1 }
    if let headDim = knownHeadDim ?? qNorm?.shape[0], headDim > 0 {
      sizes.headDim = headDim
      if let q = matrix(tensors, endingWith: ["self_attn.q_proj.weight"]), q[0] % headDim == 0 {
        sizes.attentionHeads = q[0] / headDim
      }
      if let k = matrix(tensors, endingWith: ["self_attn.k_proj.weight"]), k[0] % headDim == 0 {
        sizes.keyValueHeads = k[0] / headDim
      }
    }
    return sizes
  }

  static func inferVisionSizes(_ tensors: [TensorInfo]) -> HyperParameters {
    var sizes = HyperParameters()
    sizes.layerCount = layerCount(tensors)
    let patch = tensors.first {
      ($0.name.hasSuffix("patch_embedding.weight") || $0.name.hasSuffix("patch_embed.proj.weight")
        || $0.name.hasSuffix("patch_embeddings.projection.weight")) && $0.shape.count >= 2
    }
    sizes.hiddenSize = patch?.shape[0]
    if let up = matrix(tensors, endingWith: ["mlp.fc1.weight", "intermediate.dense.weight", "mlp.gate_proj.weight", "mlp.up_proj.weight"]) {
      sizes.intermediateSize = up[0]
    }
    return sizes
  }

  /// A tensor's role from its name alone, checked from the most specific signal down.
  static func role(ofName name: String) -> TensorRole {
    let lowered = name.lowercased()
    let segments = lowered.split(separator: ".")
    if segments.first == "lm_head" || segments.contains("lm_head") || lowered.hasPrefix("cls.predictions") {
      return .lmHead
    }
    if segments.contains(where: { $0.hasPrefix("layer_scale") || $0 == "ls1" || $0 == "ls2" }) {
      return .layerScale
    }
    if segments.contains(where: { $0.contains("norm") || $0.hasPrefix("ln_") || $0 == "ln" }) {
      return .norm
    }
    if lowered.contains("patch_embed") { return .patchEmbedding }
    let specialTokens: Set<Substring> = [
      "cls_token", "class_embedding", "mask_token", "register_tokens", "token_type_embeddings", "wpe",
    ]
    if lowered.contains("position_embedding") || lowered.contains("pos_embed")
      || segments.contains(where: { specialTokens.contains($0) })
    {
      return .positionEmbedding
    }
    let tokenEmbeddings: Set<Substring> = [
      "embed_tokens", "word_embeddings", "wte", "tok_embeddings", "token_embedding",
    ]
    if segments.contains(where: { tokenEmbeddings.contains($0) }) { return .tokenEmbedding }
    let attention: Set<Substring> = [
      "self_attn", "attn", "attention", "self_attention", "q_proj", "k_proj", "v_proj", "o_proj",
      "qkv", "qkv_proj", "query", "key", "value",
    ]
    if segments.contains(where: { attention.contains($0) }) { return .attention }
    let mlp: Set<Substring> = [
      "mlp", "feed_forward", "ffn", "intermediate", "gate_proj", "up_proj", "down_proj", "fc1", "fc2",
      "w1", "w2", "w3", "output",
    ]
    if segments.contains(where: { mlp.contains($0) }) { return .mlp }
    return .other
  }
}
