import QCompute

extension VisionLanguageModel {
  /// Where each position of the decoder's input comes from.
  public enum Position: Sendable, Equatable {
    case token(Int)
    /// Row `index` of the image features.
    case image(Int)
  }

  /// Lays out a prompt with `featureRows` image rows, as LLaVA's processor does.
  ///
  /// A single image token expands to `featureRows` positions, between `imageMarkers` (as
  /// Idefics3's processor expands `<image>` for one image it does not split); a prompt that already holds one
  /// image token per row keeps them. A prompt without image tokens, or a model whose config has
  /// no `image_token_index` (the toy VLM), gets the image rows before its first token.
  /// - Throws: `VisionLanguageError.imageTokenCount` for any other number of image tokens.
  public func layout(tokens: [Int], featureRows: Int) throws -> [Position] {
    let imageRows = (0..<featureRows).map(Position.image)
    guard let imageToken = imageTokenIndex else { return imageRows + tokens.map(Position.token) }
    let found = tokens.count(where: { $0 == imageToken })
    switch found {
    case 0:
      return imageRows + tokens.map(Position.token)
    case 1:
      let wrapped =
        imageMarkers.before.map(Position.token) + imageRows + imageMarkers.after.map(Position.token)
      return tokens.flatMap { $0 == imageToken ? wrapped : [.token($0)] }
    case featureRows:
      var row = 0
      return tokens.map { token in
        guard token == imageToken else { return .token(token) }
        defer { row += 1 }
        return .image(row)
      }
    default:
      throw VisionLanguageError.imageTokenCount(
        location: location, token: imageToken, found: found, featureRows: featureRows)
    }
  }

  /// The decoder's input embeddings `[positions, hiddenSize]`: token embeddings with the image
  /// feature rows spliced in where `layout` puts them.
  public func inputEmbeddings(tokens: [Int], features: Matrix<Float>) throws -> Matrix<Float> {
    let width = decoder.configuration.hiddenSize
    guard features.columns == width else {
      throw VisionLanguageError.widthMismatch(location: location, projector: features.columns, decoder: width)
    }
    let positions = try layout(tokens: tokens, featureRows: features.rows)
    let text = positions.compactMap { position -> Int? in
      if case .token(let id) = position { return id }
      return nil
    }
    let textRows = try decoder.embedRows(text)
    let featureValues = features.elements
    var values = [Float](repeating: 0, count: positions.count * width)
    var nextText = 0
    for (index, position) in positions.enumerated() {
      let target = index * width
      switch position {
      case .token:
        values.replaceSubrange(target..<(target + width), with: textRows[(nextText * width)..<((nextText + 1) * width)])
        nextText += 1
      case .image(let row):
        values.replaceSubrange(target..<(target + width), with: featureValues[(row * width)..<((row + 1) * width)])
      }
    }
    return try Matrix(rows: positions.count, columns: width, elements: values)
  }
}
