extension TensorSource {
  /// The tensor's elements widened to `Float`, whatever its dtype.
  ///
  /// - Throws: the source's error for an unknown name.
  public func floats(of name: String) throws -> [Float] {
    let info = try _requireInfo(name)
    return try [Float](unsafeUninitializedCapacity: info.elementCount) { buffer, count in
      try floats(of: name, into: buffer)
      count = info.elementCount
    }
  }

  /// Widens the tensor's elements into `destination`, which the caller sizes to fit, so a
  /// loop over tensors can reuse one buffer.
  ///
  /// - Precondition: `destination.count` equals the tensor's element count.
  public func floats(of name: String, into destination: UnsafeMutableBufferPointer<Float>) throws {
    let info = try _requireInfo(name)
    precondition(
      destination.count == info.elementCount,
      "buffer of \(destination.count) floats for tensor '\(name)' of \(info.elementCount) elements")
    try withRawBytes(of: name) { raw in
      DTypeConversion.widen(raw, from: info.dtype, into: destination)
    }
  }

  private func _requireInfo(_ name: String) throws -> TensorInfo {
    if let info = info(named: name) { return info }
    // Let the source report a missing tensor in its own words.
    try withRawBytes(of: name) { _ in }
    throw SafetensorsError.tensorNotFound(location: location, tensor: name)
  }
}
