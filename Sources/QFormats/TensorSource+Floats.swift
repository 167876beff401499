extension TensorSource {
  /// The tensor's elements widened to `Float`, whatever its dtype.
  ///
  /// - Throws: the source's error for an unknown name.
  public func floats(of name: String) throws -> [Float] {
    let info = try _requireInfo(name)
    // Allocated only once the source has produced the bytes, so a header's claim alone
    // (an HDF5 dataset of 2^40 elements in a 2 KB file) allocates nothing.
    return try withRawBytes(of: name) { raw in
      [Float](unsafeUninitializedCapacity: info.elementCount) { buffer, count in
        DTypeConversion.widen(raw, from: info.dtype, into: buffer)
        count = info.elementCount
      }
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
    let found = (self as? _NameIndexedTensorSource)?._indexedInfo(named: name) ?? info(named: name)
    if let info = found { return info }
    // Let the source report a missing tensor in its own words.
    try withRawBytes(of: name) { _ in }
    throw SafetensorsError.tensorNotFound(location: location, tensor: name)
  }
}

/// A source that finds a tensor by name in constant time (the protocol's `info(named:)` is a
/// linear scan, quadratic over a file with 100,000 tensors).
protocol _NameIndexedTensorSource {
  func _indexedInfo(named name: String) -> TensorInfo?
}

extension SafetensorsFile: _NameIndexedTensorSource {
  func _indexedInfo(named name: String) -> TensorInfo? { entry(named: name)?.info }

  /// The tensor's description, or `nil`; constant time.
  public func info(named name: String) -> TensorInfo? { entry(named: name)?.info }
}

extension ShardedCheckpoint: _NameIndexedTensorSource {
  func _indexedInfo(named name: String) -> TensorInfo? { shard(holding: name)?.entry(named: name)?.info }

  /// The tensor's description, or `nil`; constant time.
  public func info(named name: String) -> TensorInfo? { _indexedInfo(named: name) }
}
