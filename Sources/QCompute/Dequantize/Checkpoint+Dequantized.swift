import QFormats

extension Checkpoint {
  /// The checkpoint with its quantized tensors read as floats.
  ///
  /// A GGUF's blocks are read through `DequantizedGGUF`, an MLX-quantized folder's packed
  /// linears through `DequantizedMLX`; other checkpoints, qpacks included, come back as they are.
  /// - Throws: `DequantizeError` naming the file, the tensor and its type or the contradiction,
  ///   so a tool never goes on with tensors dropped or a config that does not fit them.
  ///
  /// Already dequantized, it comes back as it is: the wrapper hides the scales and biases but
  /// keeps the config's `quantization` block, so wrapping twice would find no packed weight.
  public func dequantized() throws(DequantizeError) -> Checkpoint {
    if source is DequantizedMLX || source is DequantizedGGUF { return self }
    if let gguf = source as? GGUFFile {
      return replacingSource(with: try DequantizedGGUF(wrapping: gguf))
    }
    guard !PackedCheckpoint.isPack(source),
      DequantizedMLX.isQuantized(source, configData: configData)
    else {
      return self
    }
    return replacingSource(
      with: try DequantizedMLX(wrapping: source, configData: configData, location: location))
  }
}
