/// Two checkpoints' vision towers run on the same images.
///
/// What `qdiff --images` reports as `images` (`Formats/qdiff-output.md`); field names are part
/// of the tool's interface.
public struct ImageComparisonResult: Codable, Sendable {
  public var old: Side
  public var new: Side
  /// One entry per image, in the order the files were given (a folder's files sorted by name).
  public var images: [PerImage]
  /// Mean over images of `cosine`.
  public var meanCosine: Double?
  /// The lowest `cosine` of any image.
  public var minCosine: Double?
  /// The largest `relative_l2` of any image (final features or projector output).
  public var maxRelativeL2: Double?
  /// Mean over images of `projector_cosine`, when both sides are vision-language models.
  public var meanProjectorCosine: Double?
  /// Per hidden state of the towers (0 the embeddings, `i` the output of block `i`): the mean
  /// over images of the mean token cosine.
  public var layers: [LayerCosine]
  /// Why `layers` is empty, when it is.
  public var layersNote: String?
  /// Every image's final features (and projector output) within tolerance: relative L2 at or
  /// below it, so identical with a tolerance of 0.
  public var same: Bool
  public var seconds: Double

  /// One side's vision model.
  public struct Side: Codable, Sendable {
    /// `vision-language` (a LLaVA-style model: tower and projector) or `vision-tower`.
    public var kind: String
    /// `dinov2`, `clip` or `siglip`.
    public var tower: String
    public var layers: Int
    public var hiddenSize: Int
    /// Width of the projector's output, for a vision-language model.
    public var projectorWidth: Int?
    /// The square image size the tower's preprocessing resizes to (from the config).
    public var imageSize: Int

    enum CodingKeys: String, CodingKey {
      case kind, tower, layers
      case hiddenSize = "hidden_size"
      case projectorWidth = "projector_width"
      case imageSize = "image_size"
    }
  }

  /// Both towers on one image.
  public struct PerImage: Codable, Sendable {
    public var file: String
    /// Feature rows (tokens) each tower produced.
    public var tokens: Int
    /// Mean over tokens of the cosine between the two towers' final features (the
    /// `last_hidden_state`); tokens where either is zero are left out.
    public var cosine: Double?
    /// ||a - b|| / ||a|| over the final features (a old, b new).
    public var relativeL2: Double?
    public var maxAbsDiff: Double?
    /// The same for the projector's output, when both sides are vision-language models.
    public var projectorCosine: Double?
    public var projectorRelativeL2: Double?

    enum CodingKeys: String, CodingKey {
      case file, tokens, cosine
      case relativeL2 = "relative_l2"
      case maxAbsDiff = "max_abs_diff"
      case projectorCosine = "projector_cosine"
      case projectorRelativeL2 = "projector_relative_l2"
    }
  }

  public struct LayerCosine: Codable, Sendable, Equatable {
    public var layer: Int
    public var cosine: Double?
  }

  enum CodingKeys: String, CodingKey {
    case old, new, images
    case meanCosine = "mean_cosine"
    case minCosine = "min_cosine"
    case maxRelativeL2 = "max_relative_l2"
    case meanProjectorCosine = "mean_projector_cosine"
    case layers
    case layersNote = "layers_note"
    case same, seconds
  }
}
