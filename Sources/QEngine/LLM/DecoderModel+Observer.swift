import QCompute

/// Sees one of a layer's four distinct linear inputs before the layer uses it.
///
/// Arguments: layer index, which input, values `[rows, width]` row-major. Calibration sums
/// their Gram matrices.
typealias LinearInputObserver = (Int, LinearInput, UnsafeBufferPointer<Float>) throws -> Void

extension DecoderModel {
  /// Logits and hidden states of one forward pass, so a caller that needs both (comparing two
  /// models on text) does not run the model twice.
  ///
  /// - Parameters:
  ///   - tokens: The input ids.
  ///   - rows: Logits of the first `rows` positions only (all when nil), for a caller
  ///     that wants the hidden states of one position more than it scores.
  ///   - observe: Sees the embeddings (index 0) and each layer's output (index `i + 1`), each
  ///     `[tokens.count, hiddenSize]` row-major and valid only during the call.
  /// - Returns: `[rows, vocabularySize]` logits.
  /// - Throws: `DecoderError` for an empty input, a token outside the vocabulary or `rows`
  ///   outside `0...tokens.count`.
  public func logits(
    tokens: [Int], rows: Int? = nil, observe: (Int, UnsafeBufferPointer<Float>) -> Void
  ) throws -> Matrix<Float> {
    let rows = rows ?? tokens.count
    guard (0...tokens.count).contains(rows) else {
      throw DecoderError.invalidInput(
        operation: "logits", reason: "\(rows) rows of logits for \(tokens.count) tokens")
    }
    let hidden = try withoutActuallyEscaping(observe) { observe in
      try forward(tokens: tokens, cache: nil, observe: observe)
    }
    let vocabulary = configuration.vocabularySize
    guard rows > 0 else { return try Matrix(rows: 0, columns: vocabulary, elements: []) }
    let values = try hidden.withUnsafeBufferPointer { buffer in
      try logits(
        ofHidden: UnsafeBufferPointer(rebasing: buffer[0..<(rows * configuration.hiddenSize)]),
        rows: rows)
    }
    return try Matrix(rows: rows, columns: vocabulary, elements: values)
  }
}
