#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

/// Safetensors from a descriptor that cannot be mapped: standard input, a pipe, a device.
///
/// The stream is read in order and bounded by what it says about itself: the 8-byte length
/// first (at most `SafetensorsHeader.maximumHeaderLength`), then the header, which is parsed
/// and validated before any data is read. The data section its tensors describe is copied to
/// an unlinked scratch file in `TMPDIR` (or /tmp), after checking the folder has room, and
/// the stream must end there. Garbage such as /dev/zero or /dev/urandom is refused after a
/// few bytes, and memory never holds more than the header and one chunk.
enum SafetensorsStream {
  /// Copies the safetensors stream on `descriptor` to a scratch file; returns that file's
  /// descriptor, which the caller maps and closes.
  ///
  /// - Throws: `SafetensorsError` naming `location` and the defect.
  static func spool(_ descriptor: Int32, location: String) throws -> Int32 {
    var prefix = try readUpTo(8, from: descriptor, location: location)
    if prefix.count == 8 {
      let length = prefix.withUnsafeBytes { UInt64(littleEndian: $0.loadUnaligned(as: UInt64.self)) }
      if length <= SafetensorsHeader.maximumHeaderLength {
        prefix += try readUpTo(Int(length), from: descriptor, location: location)
      }
    }
    // Formats that need seeking cannot be read from a stream.
    for (signature, format, article) in [(Checkpoint.hdf5Signature, "HDF5", "an"), (Array("GGUF".utf8), "GGUF", "a")]
    where prefix.starts(with: signature) {
      throw SafetensorsError.foreignFormat(
        location: location,
        format: "is \(article) \(format) file arriving as a stream; \(format) input must be a regular, seekable file")
    }
    // Too short, too long a header length, a header cut short or invalid: the same messages
    // as for a file, from the bytes read so far.
    let (_, dataLength) = try prefix.withUnsafeBytes { bytes in
      try SafetensorsHeader.readPrefix(bytes, location: location)
    }
    let (expectedSize, overflow) = prefix.count.addingReportingOverflow(dataLength)
    if overflow { throw SafetensorsError.truncated(location: location, expectedSize: .max, actualSize: prefix.count) }

    let folder = scratchFolder()
    let scratch = try createScratchFile(in: folder)
    do {
      var space = statvfs()
      if fstatvfs(scratch, &space) == 0 {
        let (bytes, overflow) = UInt64(space.f_bavail).multipliedReportingOverflow(by: UInt64(space.f_frsize))
        let free = overflow ? Int.max : Int(clamping: bytes)
        if dataLength > free {
          throw SafetensorsError.streamTooLarge(location: location, dataLength: dataLength, available: free, folder: folder)
        }
      }
      try prefix.withUnsafeBytes { bytes in try writeAll(bytes, to: scratch, folder: folder) }
      try copy(dataLength, from: descriptor, to: scratch, location: location, folder: folder, written: prefix.count)
      if try !readUpTo(1, from: descriptor, location: location).isEmpty {
        throw SafetensorsError.streamTooLong(location: location, expectedSize: expectedSize)
      }
    } catch {
      close(scratch)
      throw error
    }
    return scratch
  }

  /// Up to `count` bytes, fewer only at end of stream.
  static func readUpTo(_ count: Int, from descriptor: Int32, location: String) throws(SafetensorsError) -> [UInt8] {
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: min(count, 1 << 20))
    while bytes.count < count {
      let wanted = min(chunk.count, count - bytes.count)
      let got = chunk.withUnsafeMutableBytes { read(descriptor, $0.baseAddress, wanted) }
      if got < 0 {
        if errno == EINTR { continue }
        throw .system(location: location, operation: "read", errno: errno)
      }
      if got == 0 { break }
      bytes += chunk[0..<got]
    }
    return bytes
  }

  private static func copy(
    _ count: Int, from input: Int32, to output: Int32, location: String, folder: String, written: Int
  ) throws {
    var chunk = [UInt8](repeating: 0, count: 1 << 20)
    var left = count
    while left > 0 {
      let got = chunk.withUnsafeMutableBytes { read(input, $0.baseAddress, min($0.count, left)) }
      if got < 0 {
        if errno == EINTR { continue }
        throw SafetensorsError.system(location: location, operation: "read", errno: errno)
      }
      if got == 0 {
        throw SafetensorsError.truncated(location: location, expectedSize: written + count, actualSize: written + count - left)
      }
      try chunk.withUnsafeBytes { bytes in
        try writeAll(UnsafeRawBufferPointer(rebasing: bytes[0..<got]), to: output, folder: folder)
      }
      left -= got
    }
  }

  private static func writeAll(_ bytes: UnsafeRawBufferPointer, to descriptor: Int32, folder: String) throws {
    var offset = 0
    while offset < bytes.count {
      guard let base = bytes.baseAddress else { return }
      let n = write(descriptor, base + offset, bytes.count - offset)
      if n < 0 {
        if errno == EINTR { continue }
        throw SafetensorsError.system(location: folder, operation: "write a scratch file", errno: errno)
      }
      offset += n
    }
  }

  private static func scratchFolder() -> String {
    getenv("TMPDIR").map { String(cString: $0) }.flatMap { $0.isEmpty ? nil : $0 } ?? "/tmp"
  }

  /// A new file in `folder`, unlinked at once, so it goes away with the descriptor.
  private static func createScratchFile(in folder: String) throws(SafetensorsError) -> Int32 {
    var template = Array((folder + "/.qtoolchain-stdin-XXXXXX").utf8CString)
    let descriptor = template.withUnsafeMutableBufferPointer { buffer in buffer.baseAddress.map { mkstemp($0) } ?? -1 }
    if descriptor < 0 { throw .system(location: folder, operation: "create a scratch file", errno: errno) }
    let path = String(decoding: template.dropLast().map { UInt8(bitPattern: $0) }, as: UTF8.self)
    unlink(path)
    _ = fcntl(descriptor, F_SETFD, FD_CLOEXEC)
    return descriptor
  }
}
