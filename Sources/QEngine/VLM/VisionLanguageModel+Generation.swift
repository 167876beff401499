import QCompute

extension VisionLanguageModel {
  /// Logits `[positions, vocabularySize]` of a prompt with an image (positions as `layout` gives).
  public func logits(tokens: [Int], pixels: PixelTensor) throws -> Matrix<Float> {
    try decoder.logits(embeddings: inputEmbeddings(tokens: tokens, features: imageFeatures(pixels: pixels)))
  }

  /// Greedy continuation of a prompt with an image; returns only the new tokens, stopping after
  /// any of `eos`.
  public func generate(tokens: [Int], pixels: PixelTensor, maxTokens: Int, eos: Set<Int> = []) throws -> [Int] {
    let embeddings = try inputEmbeddings(tokens: tokens, features: imageFeatures(pixels: pixels))
    return try decoder.generate(embeddings: embeddings, maxTokens: maxTokens, eos: eos)
  }
}

extension DecoderModel {
  /// Greedy decoding after a prompt given as input embeddings `[positions, hiddenSize]`, with a
  /// key-value cache; the new tokens are embedded as usual. Returns only the new tokens.
  func generate(embeddings: Matrix<Float>, maxTokens: Int, eos: Set<Int>) throws -> [Int] {
    try checkWidth(embeddings)
    guard maxTokens > 0 else { return [] }
    let cache = KeyValueCache(model: self, capacity: embeddings.rows + maxTokens)
    let width = configuration.hiddenSize
    var generated: [Int] = []
    var input = embeddings.elements
    while generated.count < maxTokens {
      let hidden = try forward(embeddings: input, cache: cache)
      let rows = input.count / width
      let last: [Float] = try hidden.withUnsafeBufferPointer {
        try self.logits(ofHidden: UnsafeBufferPointer(rebasing: $0[((rows - 1) * width)..<(rows * width)]), rows: 1)
      }
      var best = 0
      for index in last.indices where last[index] > last[best] { best = index }
      generated.append(best)
      if eos.contains(best) { break }
      input = try embedRows([best])
    }
    return generated
  }
}
