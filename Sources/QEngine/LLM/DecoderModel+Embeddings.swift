import QCompute

extension DecoderModel {
  /// The input embeddings of `tokens`, `[tokens.count, hiddenSize]`: what a vision-language
  /// model edits (image features in place of image tokens) before `logits(embeddings:)`.
  /// - Throws: `DecoderError.tokenOutOfRange` for a token outside the vocabulary.
  public func embed(tokens: [Int]) throws -> Matrix<Float> {
    try Matrix(rows: tokens.count, columns: configuration.hiddenSize, elements: try embedRows(tokens))
  }

  /// Logits for every row of input embeddings `[positions, hiddenSize]`.
  /// - Throws: `DecoderError` for no rows or a width other than `hiddenSize`.
  public func logits(embeddings: Matrix<Float>) throws -> Matrix<Float> {
    try checkWidth(embeddings)
    let hidden = try forward(embeddings: embeddings.elements, cache: nil)
    let values = try hidden.withUnsafeBufferPointer { try logits(ofHidden: $0, rows: embeddings.rows) }
    return try Matrix(rows: embeddings.rows, columns: configuration.vocabularySize, elements: values)
  }

  /// `hiddenStates(tokens:)` from input embeddings: the embeddings (index 0) and every layer's output.
  public func hiddenStates(embeddings: Matrix<Float>) throws -> [Matrix<Float>] {
    try checkWidth(embeddings)
    var states: [[Float]] = []
    _ = try forward(embeddings: embeddings.elements, cache: nil) { _, values in states.append(Array(values)) }
    return try states.map { try Matrix(rows: embeddings.rows, columns: configuration.hiddenSize, elements: $0) }
  }

  /// Embedding rows of `tokens`, row-major, times the architecture's embedding scale.
  func embedRows(_ tokens: [Int]) throws -> [Float] {
    let c = configuration
    for token in tokens where token < 0 || token >= c.vocabularySize {
      throw DecoderError.tokenOutOfRange(location: location, token: token, vocabularySize: c.vocabularySize)
    }
    let hidden = c.hiddenSize
    var x = [Float](repeating: 0, count: tokens.count * hidden)
    x.withUnsafeMutableBufferPointer { buffer in
      for (row, token) in tokens.enumerated() {
        embedding.row(token, into: UnsafeMutableBufferPointer(rebasing: buffer[(row * hidden)..<((row + 1) * hidden)]))
      }
      if let scale = c.architecture.embeddingScale {
        for index in buffer.indices { buffer[index] *= scale }
      }
    }
    return x
  }

  func checkWidth(_ embeddings: Matrix<Float>) throws {
    guard embeddings.rows > 0, embeddings.columns == configuration.hiddenSize else {
      throw DecoderError.invalidInput(
        operation: "embeddings",
        reason: "\(embeddings.rows) x \(embeddings.columns) input, expected rows of \(configuration.hiddenSize)")
    }
  }
}
