import QFormats

/// The qpack grids (`grid` in a tensor description).
public enum PackGrid: String, Sendable, CaseIterable, Codable {
  case affine
  case symmetric
  case bilevel
}

/// What produces the codes (`method` in a tensor description).
public enum PackMethod: String, Sendable, CaseIterable, Codable {
  case rtn
  case clip
  case hqq
  case gptq
  case adaround
  case speedq
}

/// How a group's offset is stored (`zero` in a tensor description).
public enum PackZero: String, Sendable, Codable {
  /// `N.biases` in the scale dtype: w = s * q + bias.
  case bias
  /// `N.qzeros`, b-bit codes packed like the weights: w = s * (q - z).
  case int
  /// `N.zeros` in the scale dtype, a float zero in code units: w = s * (q - z).
  case float
  /// One `zero_point` for the whole tensor: w = s * (q - zero_point).
  case fixed
}

/// How one weight tensor is quantized: bits, group, grid, method and scale dtype.
public struct PackSpec: Sendable, Hashable, CustomStringConvertible {
  public var bits: Int
  public var groupSize: GroupSize
  public var grid: PackGrid
  public var method: PackMethod
  public var scaleDType: DType
  /// For `bilevel`: the second-level group `G` (scales per 4-bit chunk).
  public var scaleGroupSize: Int
  /// For `symmetric`: SPEED-Q's embedding grid (zero point 2^(b-1) - 1) instead of 2^(b-1).
  public var embeddingPolicy: Bool

  public init(
    bits: Int, groupSize: GroupSize, grid: PackGrid = .affine, method: PackMethod = .rtn,
    scaleDType: DType = .f16, scaleGroupSize: Int = 0, embeddingPolicy: Bool = false
  ) {
    self.bits = bits
    self.groupSize = groupSize
    self.grid = grid
    self.method = method
    self.scaleDType = scaleDType
    self.scaleGroupSize = scaleGroupSize
    self.embeddingPolicy = embeddingPolicy
  }

  /// SPEED-Q's w2g16g16 and w4g32g128 grids.
  public static func speedQ(bits: Int, scaleDType: DType = .f16) -> PackSpec {
    let configuration: BilevelQuantizer.Configuration = bits == 2 ? .w2g16g16 : .w4g32g128
    return PackSpec(
      bits: configuration.bits, groupSize: .elements(configuration.groupSize), grid: .bilevel,
      method: .speedq, scaleDType: scaleDType, scaleGroupSize: configuration.scaleGroupSize)
  }

  /// SPEED-Q's policy for embeddings and lm_head: 4-bit symmetric, group 32, zero point 7.
  public static func speedQEmbedding(scaleDType: DType = .f16) -> PackSpec {
    PackSpec(
      bits: 4, groupSize: .elements(32), grid: .symmetric, method: .rtn, scaleDType: scaleDType,
      embeddingPolicy: true)
  }

  /// How the offset is stored for this spec.
  public var zero: PackZero {
    switch grid {
    case .affine: method == .rtn || method == .gptq ? .bias : .float
    case .symmetric: .fixed
    case .bilevel: .int
    }
  }

  /// The fixed zero point of a symmetric grid.
  public var zeroPoint: Int {
    embeddingPolicy ? (1 << (bits - 1)) - 1 : 1 << (bits - 1)
  }

  public var description: String {
    var text = "\(bits)-bit \(groupSize) \(grid.rawValue) \(method.rawValue)"
    if grid == .bilevel { text += " g\(scaleGroupSize)" }
    return text
  }
}

/// Rows and columns of a weight as a qpack sees it: `[shape[0], prod(shape[1...])]`.
public func packMatrixShape(_ shape: [Int]) -> (rows: Int, columns: Int)? {
  guard shape.count >= 2 else { return nil }
  return (shape[0], shape.dropFirst().reduce(1, *))
}
