import QFormats

/// A checkpoint with some tensors replaced by Float32 values held in memory: a model whose
/// calibrated weights are dequantized can then be loaded and evaluated without writing a file.
public final class OverlayTensorSource: TensorSource, @unchecked Sendable {
  public let base: any TensorSource
  let replacements: [String: [Float]]
  public let tensors: [TensorInfo]
  public var location: String { base.location }
  public var metadata: [String: String] { base.metadata }

  /// `base` with each tensor named in `replacements` read as those values (as F32).
  /// - Throws: `EngineError.missingTensor` for a name `base` lacks, `.unexpectedShape` for a
  ///   value count that does not match the tensor's shape.
  public init(base: any TensorSource, replacements: [String: [Float]]) throws {
    self.base = base
    self.replacements = replacements
    var remaining = Set(replacements.keys)
    var tensors: [TensorInfo] = []
    for info in base.tensors {
      guard let values = replacements[info.name] else {
        tensors.append(info)
        continue
      }
      guard values.count == info.elementCount else {
        throw EngineError.unexpectedShape(
          location: base.location, tensor: info.name, expected: info.shape, found: [values.count])
      }
      remaining.remove(info.name)
      tensors.append(TensorInfo(name: info.name, dtype: .f32, shape: info.shape))
    }
    if let missing = remaining.sorted().first {
      throw EngineError.missingTensor(location: base.location, tensor: missing)
    }
    self.tensors = tensors
  }

  public func withRawBytes<R>(of name: String, _ body: (UnsafeRawBufferPointer) throws -> R) throws -> R {
    if let values = replacements[name] { return try values.withUnsafeBytes(body) }
    return try base.withRawBytes(of: name, body)
  }
}
