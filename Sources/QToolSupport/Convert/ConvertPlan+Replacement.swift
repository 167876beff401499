import QFormats

extension ConvertPlan {
  /// Gives `name` new values, which the pack then stores as the plan says (kept in the tensor's
  /// dtype, or quantized by its spec); codes chosen earlier from the old values are dropped.
  /// - Throws: `ConvertError.invalidReplacement` for a tensor the plan lacks, one that is not
  ///   floating point, or a value count other than its element count.
  public mutating func replace(_ name: String, with values: [Float], reason: String) throws(ConvertError) {
    guard let index = entries.firstIndex(where: { $0.info.name == name }) else {
      throw .invalidReplacement(location: location, tensor: name, reason: "is not in the checkpoint")
    }
    let info = entries[index].info
    guard info.dtype.isFloatingPoint else {
      throw .invalidReplacement(location: location, tensor: name, reason: "is \(info.dtype.rawValue), not floating point")
    }
    guard values.count == info.elementCount else {
      throw .invalidReplacement(
        location: location, tensor: name, reason: "has \(info.elementCount) elements, not \(values.count)")
    }
    entries[index].replacement = values
    entries[index].precomputed = nil
    entries[index].reason += ", \(reason)"
  }

  /// `source` with the plan's replacements in place of the stored values, in each tensor's own
  /// dtype, so the writer reads them like any other tensor; `source` itself when there are none.
  func applyingReplacements(to source: any TensorSource) -> any TensorSource {
    var bytes: [String: [UInt8]] = [:]
    for entry in entries {
      guard let values = entry.replacement, values.count == entry.info.elementCount else { continue }
      var raw = [UInt8](repeating: 0, count: values.count * entry.info.dtype.byteSize)
      values.withUnsafeBufferPointer { input in
        raw.withUnsafeMutableBytes { DTypeConversion.narrow(input, to: entry.info.dtype, into: $0) }
      }
      bytes[entry.info.name] = raw
    }
    return bytes.isEmpty ? source : ReplacedTensorSource(base: source, bytes: bytes)
  }
}

/// A source whose named tensors read as other bytes of the same dtype and shape.
final class ReplacedTensorSource: TensorSource, @unchecked Sendable {
  let base: any TensorSource
  let bytes: [String: [UInt8]]
  var location: String { base.location }
  var tensors: [TensorInfo] { base.tensors }
  var metadata: [String: String] { base.metadata }

  init(base: any TensorSource, bytes: [String: [UInt8]]) {
    self.base = base
    self.bytes = bytes
  }

  func withRawBytes<R>(of name: String, _ body: (UnsafeRawBufferPointer) throws -> R) throws -> R {
    if let replaced = bytes[name] { return try replaced.withUnsafeBytes(body) }
    return try base.withRawBytes(of: name, body)
  }
}
