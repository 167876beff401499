/// The image half of a vision-language model: a vision tower and whatever turns its output into
/// rows of the language model's input embeddings (LLaVA's projector, Idefics3's pixel shuffle
/// and connector, InternVL's `mlp1`).
public protocol ImageFeatureModel: Sendable {
  var encoder: VisionEncoder { get }
  /// What precedes `embeddings.` in the tower's tensor names.
  var towerPrefix: String { get }
  /// The id of the prompt's image token, when the config names one.
  var imageTokenIndex: Int? { get }
  /// The width of a feature row: the language model's hidden size.
  var textHiddenSize: Int { get }
  /// Image features `[count, textHiddenSize]` row-major, one row per image token.
  func imageFeatures(pixels: PixelTensor) throws -> (count: Int, values: [Float])
}

extension LLaVAVision: ImageFeatureModel {}
