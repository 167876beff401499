import Dispatch

/// Splitting a large buffer across all cores.
extension TensorStatistics {
  /// Below this many elements per task, scheduling costs more than it saves.
  static let minimumElementsPerTask = 1 << 16

  /// The statistics of every element of `buffer`, computed on all cores for large buffers.
  ///
  /// The result does not depend on the number of cores: the buffer is cut into the same
  /// blocks either way and the blocks are merged in order.
  public static func compute(_ buffer: UnsafeBufferPointer<Float>) -> TensorStatistics {
    let n = buffer.count
    let blocks = (n + blockSize - 1) / blockSize
    let tasks = Swift.min(blocks, Swift.max(1, n / minimumElementsPerTask))
    if tasks <= 1 {
      var result = TensorStatistics()
      result.add(buffer)
      return result
    }
    // Each task takes a run of whole blocks, so the cuts fall on block boundaries.
    let blocksPerTask = (blocks + tasks - 1) / tasks
    let partials = UnsafeMutableBufferPointer<TensorStatistics>.allocate(capacity: tasks)
    partials.initialize(repeating: TensorStatistics())
    defer { partials.deallocate() }
    // Tasks read disjoint block runs of the input and write disjoint slots of `partials`.
    nonisolated(unsafe) let input = buffer
    nonisolated(unsafe) let slots = partials
    DispatchQueue.concurrentPerform(iterations: tasks) { task in
      let start = Swift.min(n, task * blocksPerTask * blockSize)
      let end = Swift.min(n, start + blocksPerTask * blockSize)
      var part = TensorStatistics()
      part.add(UnsafeBufferPointer(rebasing: input[start..<end]))
      slots[task] = part
    }
    var result = TensorStatistics()
    for part in partials { result.merge(part) }
    return result
  }
}
