import QFormats

/// A source that reads quantized tensors as floats but knows what they occupy as stored, so a
/// report gives a GGUF's or an MLX folder's real size rather than that of the floats it shows.
public protocol DequantizingSource: TensorSource {
  /// Bytes the tensor occupies as stored, companions included, or `nil` for an unknown name.
  func storedByteCount(of name: String) -> Int?
}

extension DequantizedGGUF: DequantizingSource {
  public func storedByteCount(of name: String) -> Int? {
    file.tensorInfo(named: name)?.byteCount
  }
}

extension DequantizedMLX: DequantizingSource {
  public func storedByteCount(of name: String) -> Int? {
    guard let layer = layers[name] else { return base.info(named: name)?.byteCount }
    return [".weight", ".scales", ".biases"].reduce(0) { total, suffix in
      total + (base.info(named: layer.module + suffix)?.byteCount ?? 0)
    }
  }
}
