/// What a GGUF file says about one tensor, for every ggml type including block-quantized ones.
public struct GGUFTensorInfo: Sendable, Hashable {
  /// The name as stored.
  public var name: String
  public var type: GGMLType
  /// Row-major dimensions: the reverse of ggml's `ne` order, so an HF `[out, in]` weight reads `[out, in]`.
  public var shape: [Int]
  /// Bytes of the tensor's data (whole blocks for quantized types).
  public var byteCount: Int
  /// Where the data starts, relative to the start of the data section.
  public var offset: Int

  public init(name: String, type: GGMLType, shape: [Int], byteCount: Int, offset: Int) {
    self.name = name
    self.type = type
    self.shape = shape
    self.byteCount = byteCount
    self.offset = offset
  }

  /// The element count (1 for a scalar).
  public var elementCount: Int { shape.reduce(1, *) }
}
