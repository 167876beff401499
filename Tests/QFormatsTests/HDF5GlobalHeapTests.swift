import Foundation
import Testing

@testable import QFormats

/// Variable-length attributes whose global heap is corrupt must not reach libhdf5's `H5Aread`.
@Suite("HDF5 global heap checks")
struct HDF5GlobalHeapTests {
  static let malformedFound = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    .appendingPathComponent("Fixtures/malformed-found")

  /// A version-0 superblock prefix (lengths of 8 bytes) followed by `tail`.
  static func file(_ tail: [UInt8]) -> [UInt8] {
    var bytes: [UInt8] = [0x89, 0x48, 0x44, 0x46, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 0, 0, 8, 8, 0]
    bytes += [UInt8](repeating: 0, count: 16)
    return bytes + tail
  }

  static func le64(_ value: UInt64) -> [UInt8] { (0..<8).map { UInt8(truncatingIfNeeded: value >> ($0 * 8)) } }

  /// A collection of `size` bytes holding one object of `objectSize` bytes, then free space
  /// whose size, as libhdf5 writes it, runs from its own header to the collection's end (or is
  /// `freeSize` when given).
  static func collection(
    size: UInt64, objectSize: UInt64, dataBytes: Int, freeSize: UInt64? = nil
  ) -> [UInt8] {
    var bytes = Array("GCOL".utf8) + [1, 0, 0, 0] + le64(size)
    bytes += [1, 0, 1, 0, 0, 0, 0, 0] + le64(objectSize) + [UInt8](repeating: 0x61, count: dataBytes)
    bytes += [0, 0, 0, 0, 0, 0, 0, 0] + le64(freeSize ?? (size - UInt64(bytes.count)))
    return bytes + [UInt8](repeating: 0, count: Int(size) - bytes.count)
  }

  static func check(_ bytes: [UInt8]) -> Bool {
    bytes.withUnsafeBytes { HDF5GlobalHeaps.check($0) }
  }

  @Test func wellFormedCollectionPasses() {
    #expect(Self.check(Self.file(Self.collection(size: 4096, objectSize: 5, dataBytes: 8))))
  }

  @Test func fileWithoutCollectionsPasses() {
    #expect(Self.check(Self.file([UInt8](repeating: 0, count: 64))))
  }

  @Test func objectRunningPastItsCollectionFails() {
    #expect(!Self.check(Self.file(Self.collection(size: 4096, objectSize: 25971, dataBytes: 8))))
    #expect(!Self.check(Self.file(Self.collection(size: 4096, objectSize: UInt64.max, dataBytes: 8))))
  }

  /// libhdf5 steps over free space by its size, so free space of size 0 loops for ever in
  /// `H5HG__cache_heap_deserialize`, and free space that stops short is read on as objects.
  @Test func freeSpaceThatDoesNotReachTheEndIsFollowedLikeLibhdf5() {
    #expect(!Self.check(Self.file(Self.collection(size: 4096, objectSize: 5, dataBytes: 8, freeSize: 0))))
    #expect(!Self.check(Self.file(Self.collection(size: 4096, objectSize: 5, dataBytes: 8, freeSize: 5000))))
    // 16 bytes short: the zeros there read as a second free space of size 0.
    #expect(!Self.check(Self.file(Self.collection(size: 4096, objectSize: 5, dataBytes: 8, freeSize: 4040))))
  }

  /// libhdf5 looped inside `H5Aread` on this fuzzed file's free space of size 0; the check now
  /// refuses its heap, so the variable-length attributes are not read and the file opens or fails cleanly.
  @Test func freeSpaceOfSizeZeroIsRefused() throws {
    let path = Self.malformedFound.appendingPathComponent("libhdf5_global_heap_loop.h5").path
    #expect(!HDF5GlobalHeaps.scan(path: path))
    let began = ContinuousClock.now
    do {
      _ = try HDF5File(path: path)
    } catch let error as HDF5Error {
      #expect(error.description.hasPrefix(path))
      guard case .libraryTimedOut = error else { return }
      Issue.record("libhdf5 still loops: \(error)")
    }
    #expect(ContinuousClock.now - began < .seconds(5))
  }

  @Test func collectionRunningPastTheFileFails() {
    var bytes = Self.file(Self.collection(size: 4096, objectSize: 5, dataBytes: 8))
    bytes.removeLast(100)
    #expect(!Self.check(bytes))
  }

  @Test func fileWithoutSuperblockFails() {
    #expect(!Self.check(Self.collection(size: 4096, objectSize: 5, dataBytes: 8)))
  }

  /// Before the check this crashed the process inside libhdf5's `H5HG_read`; now it opens or
  /// fails with an `HDF5Error` (the fuzzed file's link table is damaged too).
  @Test func corruptVariableLengthAttributeIsNotRead() throws {
    let path = Self.malformedFound.appendingPathComponent("libhdf5_vlen_attribute_heap.h5").path
    #expect(!HDF5GlobalHeaps.scan(path: path))
    do {
      let file = try HDF5File(path: path)
      #expect(file.metadata.values.contains(HDF5Attributes.notRead))
    } catch let error as HDF5Error {
      #expect(error.description.contains("libhdf5_vlen_attribute_heap.h5"))
    }
  }

  @Test func wellFormedFixturesPassTheScan() {
    for name in HDF5FileTests.fixtures {
      #expect(HDF5GlobalHeaps.scan(path: HDF5Fixtures.path(name)), "\(name)")
    }
  }
}
