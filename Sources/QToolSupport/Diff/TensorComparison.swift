import Dispatch
import Foundation
import QFormats

/// Streaming comparison of two tensors: chunk by chunk on all cores, Float64 sums.
///
/// Each task widens its own chunk of both tensors into private buffers, so memory stays at a
/// chunk per core whatever the tensor's size; partial sums merge in chunk order, so the result
/// does not depend on the number of cores. A memory-mapped file's pages are dropped from the
/// process once their chunk is done (they stay in the page cache), so resident memory does not
/// grow to the size of both checkpoints.
public enum TensorComparison {
  /// Elements per task.
  static let chunk = 1 << 16

  /// The result of comparing two same-shaped tensors.
  public struct Outcome: Sendable {
    public var sums: DifferenceSums
    /// Same dtype and the same bytes.
    public var bitIdentical: Bool
    public var oldHash: UInt64
    public var newHash: UInt64
  }

  /// Compares `oldInfo` in `old` with `newInfo` in `new`, which have the same element count.
  ///
  /// - Throws: a source's read error, or `DiffError.shortTensor` when a source hands back fewer
  ///   bytes than the tensor's shape needs.
  public static func compare(
    old: any TensorSource, _ oldInfo: TensorInfo, new: any TensorSource, _ newInfo: TensorInfo
  ) throws -> Outcome {
    let total = min(oldInfo.elementCount, newInfo.elementCount)
    let chunks = (total + chunk - 1) / chunk
    let sameType = oldInfo.dtype == newInfo.dtype
    return try old.withRawBytes(of: oldInfo.name) { oldRaw in
      try requireBytes(oldRaw, oldInfo, old.location)
      return try new.withRawBytes(of: newInfo.name) { newRaw in
        try requireBytes(newRaw, newInfo, new.location)
        let parts = UnsafeMutableBufferPointer<ChunkResult>.allocate(capacity: max(chunks, 1))
        parts.initialize(repeating: ChunkResult())
        defer { parts.deallocate() }
        // Tasks read disjoint byte ranges and write disjoint slots.
        nonisolated(unsafe) let a = oldRaw
        nonisolated(unsafe) let b = newRaw
        nonisolated(unsafe) let slots = parts
        let oldFile = old as? SafetensorsFile
        let newFile = new as? SafetensorsFile
        DispatchQueue.concurrentPerform(iterations: chunks) { index in
          let start = index * chunk
          let count = Swift.min(chunk, total - start)
          let bufferA = UnsafeMutableBufferPointer<Float>.allocate(capacity: count)
          let bufferB = UnsafeMutableBufferPointer<Float>.allocate(capacity: count)
          defer {
            bufferA.deallocate()
            bufferB.deallocate()
          }
          let bytesA = UnsafeRawBufferPointer(
            rebasing: a[(start * oldInfo.dtype.byteSize)..<((start + count) * oldInfo.dtype.byteSize)])
          let bytesB = UnsafeRawBufferPointer(
            rebasing: b[(start * newInfo.dtype.byteSize)..<((start + count) * newInfo.dtype.byteSize)])
          DTypeConversion.widen(bytesA, from: oldInfo.dtype, into: bufferA)
          DTypeConversion.widen(bytesB, from: newInfo.dtype, into: bufferB)
          var result = ChunkResult()
          result.sums.add(old: UnsafeBufferPointer(bufferA), new: UnsafeBufferPointer(bufferB))
          result.identical = sameType && ContentHash.equal(bytesA, bytesB)
          result.oldHash = ContentHash.hash(bytesA)
          result.newHash = ContentHash.hash(bytesB)
          slots[index] = result
          oldFile?.releasePages(
            of: oldInfo.name, byteRange: (start * oldInfo.dtype.byteSize)..<((start + count) * oldInfo.dtype.byteSize))
          newFile?.releasePages(
            of: newInfo.name, byteRange: (start * newInfo.dtype.byteSize)..<((start + count) * newInfo.dtype.byteSize))
        }
        var sums = DifferenceSums()
        var identical = sameType
        var oldHash = ContentHash(oldInfo)
        var newHash = ContentHash(newInfo)
        for part in parts.prefix(chunks) {
          sums.merge(part.sums)
          identical = identical && part.identical
          oldHash.combine(part.oldHash)
          newHash.combine(part.newHash)
        }
        return Outcome(
          sums: sums, bitIdentical: identical, oldHash: oldHash.value, newHash: newHash.value)
      }
    }
  }

  /// The content hash of one tensor, from its dtype, shape and bytes.
  public static func hash(of info: TensorInfo, in source: any TensorSource) throws -> UInt64 {
    let total = info.elementCount
    let chunks = (total + chunk - 1) / chunk
    let size = info.dtype.byteSize
    return try source.withRawBytes(of: info.name) { raw in
      try requireBytes(raw, info, source.location)
      let parts = UnsafeMutableBufferPointer<UInt64>.allocate(capacity: max(chunks, 1))
      parts.initialize(repeating: 0)
      defer { parts.deallocate() }
      nonisolated(unsafe) let input = raw
      nonisolated(unsafe) let slots = parts
      let file = source as? SafetensorsFile
      DispatchQueue.concurrentPerform(iterations: chunks) { index in
        let start = index * chunk
        let count = Swift.min(chunk, total - start)
        slots[index] = ContentHash.hash(
          UnsafeRawBufferPointer(rebasing: input[(start * size)..<((start + count) * size)]))
        file?.releasePages(of: info.name, byteRange: (start * size)..<((start + count) * size))
      }
      var hash = ContentHash(info)
      for part in parts.prefix(chunks) { hash.combine(part) }
      return hash.value
    }
  }

  private static func requireBytes(_ raw: UnsafeRawBufferPointer, _ info: TensorInfo, _ location: String) throws {
    if raw.count < info.byteCount {
      throw DiffError.shortTensor(
        location: location, tensor: info.name, bytes: raw.count, expected: info.byteCount)
    }
  }

  private struct ChunkResult {
    var sums = DifferenceSums()
    var identical = true
    var oldHash: UInt64 = 0
    var newHash: UInt64 = 0
  }
}

/// A 64-bit content hash for matching renamed tensors by content (not for security).
///
/// Chunks hash independently, eight bytes at a time, and combine in order.
struct ContentHash {
  private(set) var value: UInt64

  init(_ info: TensorInfo) {
    var h: UInt64 = 0xcbf2_9ce4_8422_2325
    for byte in info.dtype.rawValue.utf8 { h = Self.mix(h, UInt64(byte)) }
    for dimension in info.shape { h = Self.mix(h, UInt64(truncatingIfNeeded: dimension)) }
    value = h
  }

  mutating func combine(_ chunkHash: UInt64) {
    value = Self.mix(value, chunkHash)
  }

  static func mix(_ h: UInt64, _ word: UInt64) -> UInt64 {
    var x = (h ^ word) &* 0x9E37_79B9_7F4A_7C15
    x ^= x >> 29
    return x &* 0xBF58_476D_1CE4_E5B9
  }

  static func equal(_ a: UnsafeRawBufferPointer, _ b: UnsafeRawBufferPointer) -> Bool {
    guard a.count == b.count else { return false }
    guard let pa = a.baseAddress, let pb = b.baseAddress else { return true }
    return memcmp(pa, pb, a.count) == 0
  }

  static func hash(_ bytes: UnsafeRawBufferPointer) -> UInt64 {
    var h = UInt64(truncatingIfNeeded: bytes.count) &* 0x94D0_49BB_1331_11EB
    var i = 0
    let n = bytes.count
    while i &+ 8 <= n {
      let word = UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: i, as: UInt64.self))
      h = ((h ^ word) &* 0x9E37_79B9_7F4A_7C15)
      h = (h << 31) | (h >> 33)
      i &+= 8
    }
    var tail: UInt64 = 0
    var shift: UInt64 = 0
    while i < n {
      tail |= UInt64(bytes[i]) << shift
      shift &+= 8
      i &+= 1
    }
    return mix(h, tail)
  }
}
