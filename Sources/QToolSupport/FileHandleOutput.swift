#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

/// Unbuffered writes to the standard streams.
enum FileHandleOutput {
  static func writeStderr(_ string: String) {
    write(string, to: 2)
  }

  /// Writes all of `string`, retrying short writes; gives up silently on a closed pipe.
  static func write(_ string: String, to descriptor: Int32) {
    var s = string
    s.withUTF8 { buffer in
      var offset = 0
      while offset < buffer.count {
        guard let base = buffer.baseAddress else { return }
        let n = Glibc.write(descriptor, base + offset, buffer.count - offset)
        if n < 0 && errno == EINTR { continue }
        if n <= 0 { return }
        offset += n
      }
    }
  }
}
