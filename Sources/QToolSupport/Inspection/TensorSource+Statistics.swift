import Dispatch
import QCompute
import QFormats

extension TensorSource {
  /// Statistics of one tensor, widened to `Float` and reduced chunk by chunk on all cores.
  ///
  /// Each task widens its own chunk into a private buffer, so memory stays at one chunk per
  /// core whatever the tensor's size, and partial results are merged in chunk order, so the
  /// answer does not depend on the number of cores.
  public func statistics(of info: TensorInfo) throws -> TensorStatistics {
    let total = info.elementCount
    let chunk = 1 << 16
    let chunks = (total + chunk - 1) / chunk
    if chunks == 0 { return TensorStatistics() }
    let byteSize = info.dtype.byteSize
    return try withRawBytes(of: info.name) { raw in
      let partials = UnsafeMutableBufferPointer<TensorStatistics>.allocate(capacity: chunks)
      partials.initialize(repeating: TensorStatistics())
      defer { partials.deallocate() }
      // Tasks read disjoint byte ranges and write disjoint slots.
      nonisolated(unsafe) let input = raw
      nonisolated(unsafe) let slots = partials
      DispatchQueue.concurrentPerform(iterations: chunks) { index in
        let start = index * chunk
        let count = Swift.min(chunk, total - start)
        let buffer = UnsafeMutableBufferPointer<Float>.allocate(capacity: count)
        defer { buffer.deallocate() }
        let bytes = UnsafeRawBufferPointer(
          rebasing: input[(start * byteSize)..<((start + count) * byteSize)])
        DTypeConversion.widen(bytes, from: info.dtype, into: buffer)
        var part = TensorStatistics()
        part.add(UnsafeBufferPointer(buffer))
        slots[index] = part
      }
      var result = TensorStatistics()
      for part in partials { result.merge(part) }
      return result
    }
  }
}
