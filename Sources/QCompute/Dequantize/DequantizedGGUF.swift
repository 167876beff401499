import QFormats

/// A GGUF file whose block-quantized tensors read as f32, dequantized as ggml does.
///
/// Tools that take GGUF input work on floats; without this they would see only the plain
/// tensors and silently drop the quantized ones. Names and shapes stay as the file has them
/// (GGUF names; row-major shapes, the reverse of ggml's `ne`). Every block type is checked
/// when the file is wrapped, so an unreadable one stops a run before anything is written.
public final class DequantizedGGUF: TensorSource, @unchecked Sendable {
  public let file: GGUFFile
  public let tensors: [TensorInfo]
  public var location: String { file.location }
  public var metadata: [String: String] { file.metadata }

  /// Wraps `file`, listing every tensor, the block-quantized ones as f32.
  /// - Throws: `DequantizeError.unsupportedBlockType` for the first tensor of a type
  ///   `GGUFBlocks.dequantize` does not read.
  public init(wrapping file: GGUFFile) throws(DequantizeError) {
    self.file = file
    var listed: [TensorInfo] = []
    for tensor in file.allTensors {
      if let dtype = tensor.type.dtype {
        listed.append(TensorInfo(name: tensor.name, dtype: dtype, shape: tensor.shape))
        continue
      }
      guard GGUFBlocks.decodableTypes.contains(tensor.type) else {
        throw .unsupportedBlockType(
          location: file.location, tensor: tensor.name, type: tensor.type.name)
      }
      listed.append(TensorInfo(name: tensor.name, dtype: .f32, shape: tensor.shape))
    }
    tensors = listed
  }

  /// The tensor's bytes: as stored for plain types, little-endian f32 for block types.
  public func withRawBytes<R>(of name: String, _ body: (UnsafeRawBufferPointer) throws -> R) throws
    -> R
  {
    guard let info = file.tensorInfo(named: name), info.type.dtype == nil else {
      return try file.withRawBytes(of: name, body)
    }
    let values = try dequantizedFloats(of: info)
    #if _endian(big)
    return try values.map { $0.bitPattern.littleEndian }.withUnsafeBytes(body)
    #else
    return try values.withUnsafeBytes(body)
    #endif
  }

  private func dequantizedFloats(of info: GGUFTensorInfo) throws -> [Float] {
    let values = try file.withRawBytes(of: info.name) { bytes throws(DequantizeError) in
      do {
        return try GGUFBlocks.dequantize(bytes, type: info.type)
      } catch {
        throw .badBlocks(location: file.location, tensor: info.name, reason: "\(error)")
      }
    }
    guard values.count == info.elementCount else {
      throw DequantizeError.badBlocks(
        location: file.location, tensor: info.name,
        reason:
          "decodes to \(values.count) values, expected \(info.elementCount) for shape \(info.shape)"
      )
    }
    return values
  }
}
