import Foundation

#if canImport(Glibc)
  import Glibc
#endif

/// An unlinked scratch file holding tensor payloads until the header that must precede them is
/// known (compressed sizes and checksums are known only after quantizing).
///
/// Being unlinked at once, it vanishes with the process however that ends.
final class PayloadSpool {
  let location: String
  private let descriptor: Int32
  private(set) var size = 0

  /// Creates the spool in `directory` (the output's staging folder, on the output's disk).
  init(directory: String) throws(ConvertError) {
    var template = Array((directory + "/.qconvert-spool-XXXXXX").utf8CString)
    let descriptor = template.withUnsafeMutableBufferPointer { buffer in buffer.baseAddress.map { mkstemp($0) } ?? -1 }
    let path = String(decoding: template.dropLast().map { UInt8(bitPattern: $0) }, as: UTF8.self)
    guard descriptor >= 0 else {
      throw .fileSystem(path: path, reason: "cannot create a scratch file: \(String(cString: strerror(errno)))")
    }
    unlink(path)
    self.descriptor = descriptor
    location = path
  }

  deinit { close(descriptor) }

  /// Appends `bytes`; returns where they start.
  func append(_ bytes: UnsafeRawBufferPointer) throws(ConvertError) -> Int {
    let start = size
    var done = 0
    while done < bytes.count {
      let written = pwrite(descriptor, bytes.baseAddress.map { $0 + done }, bytes.count - done, off_t(start + done))
      if written < 0 {
        if errno == EINTR { continue }
        throw .fileSystem(path: location, reason: "cannot write the scratch file: \(String(cString: strerror(errno)))")
      }
      done += written
    }
    size += bytes.count
    return start
  }

  /// Reads `count` bytes stored at `offset`.
  func read(offset: Int, count: Int) throws(ConvertError) -> [UInt8] {
    var out = [UInt8](repeating: 0, count: count)
    var done = 0
    while done < count {
      let got = out.withUnsafeMutableBytes { pread(descriptor, $0.baseAddress.map { $0 + done }, count - done, off_t(offset + done)) }
      if got < 0, errno == EINTR { continue }
      guard got > 0 else {
        throw .fileSystem(path: location, reason: "cannot read the scratch file back")
      }
      done += got
    }
    return out
  }
}
