#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

/// Unbuffered writes to the standard streams.
enum FileHandleOutput {
  static func writeStderr(_ string: String) {
    var s = string
    s.withUTF8 { buffer in
      var offset = 0
      while offset < buffer.count {
        let n = write(2, buffer.baseAddress! + offset, buffer.count - offset)
        if n <= 0 { return }
        offset += n
      }
    }
  }
}
