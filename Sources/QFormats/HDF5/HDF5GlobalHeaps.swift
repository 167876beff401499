#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

/// Checks a file's global heap collections before libhdf5 reads variable-length strings from them.
///
/// libhdf5 1.10 trusts the object sizes inside a global heap collection: `H5HG_read`, reached from
/// `H5Aread` with a variable-length memory type, copies an object whose size runs past its
/// collection and crashes the process (`Fixtures/malformed-found/libhdf5_vlen_attribute_heap.h5`).
/// Heap identifiers cannot be read without libhdf5 following them, so this scans the whole file for
/// collections ("GCOL", version 1) and accepts it only if each one lies inside the file and each
/// object inside its collection. A stray "GCOL" in tensor data that does not parse only costs the
/// variable-length attributes, which are then reported as not read. The result is computed once.
final class HDF5GlobalHeaps: @unchecked Sendable {
  let path: String
  private var verdict: Bool?

  init(path: String) {
    self.path = path
  }

  /// Whether variable-length data in this file can be handed to libhdf5.
  ///
  /// Called with the HDF5 library lock held, which also guards `verdict`.
  var areWellFormed: Bool {
    if let verdict { return verdict }
    let result = Self.scan(path: path)
    verdict = result
    return result
  }

  /// Maps the file and checks every collection; false when the file cannot be read.
  static func scan(path: String) -> Bool {
    let descriptor = open(path, O_RDONLY)
    guard descriptor >= 0 else { return false }
    defer { close(descriptor) }
    var status = stat()
    guard fstat(descriptor, &status) == 0, status.st_size > 0 else { return false }
    let size = Int(status.st_size)
    guard let mapping = mmap(nil, size, PROT_READ, MAP_PRIVATE, descriptor, 0),
      mapping != MAP_FAILED
    else { return false }
    defer { munmap(mapping, size) }
    return check(UnsafeRawBufferPointer(start: mapping, count: size))
  }

  /// Checks the collections in `file`, the whole file's bytes.
  static func check(_ file: UnsafeRawBufferPointer) -> Bool {
    guard let lengthSize = lengthSize(file), let base = file.baseAddress else { return false }
    let signature: [UInt8] = Array("GCOL".utf8)
    let headerSize = 8 + lengthSize
    let objectHeaderSize = 8 + lengthSize
    var position = 0
    while position < file.count {
      guard let found = memchr(base + position, Int32(signature[0]), file.count - position) else {
        return true
      }
      let start = base.distance(to: UnsafeRawPointer(found))
      position = start + 1
      guard start + 4 <= file.count, file[(start + 1)..<(start + 4)].elementsEqual(signature[1...])
      else { continue }
      // Collection: signature, version 1, 3 reserved bytes, collection size (lengths-sized).
      guard start + headerSize <= file.count, file[start + 4] == 1 else { continue }
      let collectionSize = readLength(file, at: start + 8, size: lengthSize)
      guard collectionSize >= UInt64(headerSize), collectionSize <= UInt64(file.count - start)
      else { return false }
      let end = start + Int(collectionSize)
      // Objects: index (2), reference count (2), reserved (4), size, data padded to 8 bytes.
      // Walked as libhdf5's `H5HG__cache_heap_deserialize` walks them, which reads on past index 0.
      var entry = start + headerSize
      while entry + objectHeaderSize <= end {
        let index = UInt16(file[entry]) | UInt16(file[entry + 1]) << 8
        let objectSize = readLength(file, at: entry + 8, size: lengthSize)
        // Index 0 is free space, whose size counts its own header; libhdf5 steps over exactly
        // that size, so a size of 0 holds it in place for ever
        // (`Fixtures/malformed-found/libhdf5_global_heap_loop.h5`).
        if index == 0 {
          guard objectSize > 0, objectSize <= UInt64(end - entry) else { return false }
          entry += Int(objectSize)
          continue
        }
        let (padded, overflow) = objectSize.addingReportingOverflow(7)
        let room = UInt64(end - entry - objectHeaderSize)
        guard !overflow, padded / 8 * 8 <= room else { return false }
        entry += objectHeaderSize + Int(padded / 8 * 8)
      }
    }
    return true
  }

  /// The superblock's size of lengths (2, 4 or 8), searched at 0, 512, 1024, ... as libhdf5 does.
  private static func lengthSize(_ file: UnsafeRawBufferPointer) -> Int? {
    let signature: [UInt8] = [0x89, 0x48, 0x44, 0x46, 0x0d, 0x0a, 0x1a, 0x0a]
    var offset = 0
    while offset + 16 <= file.count {
      if file[offset..<(offset + 8)].elementsEqual(signature) {
        let version = file[offset + 8]
        // Versions 0 and 1 keep the sizes at bytes 13 and 14; versions 2 and 3 at 9 and 10.
        let size = Int(version <= 1 ? file[offset + 14] : file[offset + 10])
        return [2, 4, 8].contains(size) ? size : nil
      }
      offset = offset == 0 ? 512 : offset * 2
    }
    return nil
  }

  private static func readLength(_ file: UnsafeRawBufferPointer, at offset: Int, size: Int)
    -> UInt64
  {
    var value: UInt64 = 0
    for byte in (0..<size).reversed() { value = value << 8 | UInt64(file[offset + byte]) }
    return value
  }
}
