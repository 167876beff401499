/// What a checkpoint says about one tensor, before any of its data is read.
public struct TensorInfo: Sendable, Hashable {
  /// The tensor's name as stored (dotted, e.g. `model.layers.0.mlp.down_proj.weight`).
  public var name: String
  public var dtype: DType
  /// Row-major dimensions; `[]` is a scalar.
  public var shape: [Int]

  public init(name: String, dtype: DType, shape: [Int]) {
    self.name = name
    self.dtype = dtype
    self.shape = shape
  }

  /// The number of elements (1 for a scalar, 0 when any dimension is 0).
  ///
  /// Shapes from files are checked for overflow when they are parsed, so this cannot trap
  /// on a tensor that a reader returned.
  public var elementCount: Int { shape.reduce(1, *) }

  /// The number of bytes the data occupies.
  public var byteCount: Int { elementCount * dtype.byteSize }
}
