import CZstd

#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

/// Failures to decompress a `.zst` input, naming the file.
public enum ZstdInputError: Error, CustomStringConvertible, Equatable {
  case system(path: String, operation: String, errno: Int32)
  case corrupt(path: String, reason: String)

  public var description: String {
    switch self {
    case .system(let path, let operation, let code):
      "\(path): cannot \(operation): \(String(cString: strerror(code)))"
    case .corrupt(let path, let reason):
      "\(path): \(reason)"
    }
  }
}

/// A `.zst`-compressed input decompressed into an anonymous scratch file, which readers map
/// like any other file; memory stays at zstd's window and buffers, not the content.
public enum ZstdInput {
  /// Decompresses `path` (one or more zstd frames) in streaming mode into a scratch file in
  /// `TMPDIR` (or /tmp) that is unlinked at once; returns its open descriptor, positioned at 0.
  ///
  /// The corresponding C function is `ZSTD_decompressStream`.
  public static func decompress(_ path: String) throws(ZstdInputError) -> Int32 {
    let input = open(path, O_RDONLY | O_CLOEXEC)
    if input < 0 { throw .system(path: path, operation: "open", errno: errno) }
    defer { close(input) }
    let directory = getenv("TMPDIR").map { String(cString: $0) }.flatMap { $0.isEmpty ? nil : $0 } ?? "/tmp"
    var template = Array((directory + "/.qtoolchain-zst-XXXXXX").utf8CString)
    let output = template.withUnsafeMutableBufferPointer { buffer in buffer.baseAddress.map { mkstemp($0) } ?? -1 }
    let scratchPath = String(decoding: template.dropLast().map { UInt8(bitPattern: $0) }, as: UTF8.self)
    if output < 0 { throw .system(path: scratchPath, operation: "create a scratch file", errno: errno) }
    unlink(scratchPath)
    do throws(ZstdInputError) {
      try stream(from: input, to: output, path: path)
    } catch {
      close(output)
      throw error
    }
    return output
  }

  private static func stream(from input: Int32, to output: Int32, path: String) throws(ZstdInputError) {
    guard let context = ZSTD_createDStream() else {
      throw .corrupt(path: path, reason: "cannot create a zstd decompression stream")
    }
    defer { ZSTD_freeDStream(context) }
    let inCapacity = ZSTD_DStreamInSize()
    let outCapacity = ZSTD_DStreamOutSize()
    let inBuffer = UnsafeMutableRawPointer.allocate(byteCount: inCapacity, alignment: 16)
    let outBuffer = UnsafeMutableRawPointer.allocate(byteCount: outCapacity, alignment: 16)
    defer {
      inBuffer.deallocate()
      outBuffer.deallocate()
    }
    var lastResult = 0
    var sawInput = false
    while true {
      let got = read(input, inBuffer, inCapacity)
      if got < 0 {
        if errno == EINTR { continue }
        throw .system(path: path, operation: "read", errno: errno)
      }
      if got == 0 { break }
      sawInput = true
      var source = ZSTD_inBuffer(src: UnsafeRawPointer(inBuffer), size: got, pos: 0)
      while source.pos < source.size {
        var destination = ZSTD_outBuffer(dst: outBuffer, size: outCapacity, pos: 0)
        let result = ZSTD_decompressStream(context, &destination, &source)
        if ZSTD_isError(result) != 0 {
          throw .corrupt(path: path, reason: "is not valid zstd data: \(String(cString: ZSTD_getErrorName(result)))")
        }
        lastResult = result
        try writeAll(output, UnsafeRawBufferPointer(start: outBuffer, count: destination.pos), path: path)
      }
    }
    // Flush what the decoder still holds for the input already given.
    while sawInput, lastResult != 0 {
      var source = ZSTD_inBuffer(src: nil, size: 0, pos: 0)
      var destination = ZSTD_outBuffer(dst: outBuffer, size: outCapacity, pos: 0)
      let result = ZSTD_decompressStream(context, &destination, &source)
      if ZSTD_isError(result) != 0 {
        throw .corrupt(path: path, reason: "is not valid zstd data: \(String(cString: ZSTD_getErrorName(result)))")
      }
      lastResult = result
      try writeAll(output, UnsafeRawBufferPointer(start: outBuffer, count: destination.pos), path: path)
      if destination.pos < outCapacity { break }
    }
    guard sawInput else { throw .corrupt(path: path, reason: "is empty, not a zstd file") }
    guard lastResult == 0 else { throw .corrupt(path: path, reason: "ends in the middle of a zstd frame") }
    if lseek(output, 0, SEEK_SET) < 0 { throw .system(path: path, operation: "rewind the scratch file", errno: errno) }
  }

  private static func writeAll(_ descriptor: Int32, _ bytes: UnsafeRawBufferPointer, path: String) throws(ZstdInputError) {
    guard var next = bytes.baseAddress else { return }
    var remaining = bytes.count
    while remaining > 0 {
      let written = write(descriptor, next, remaining)
      if written < 0 {
        if errno == EINTR { continue }
        throw .system(path: path, operation: "write the decompressed scratch file", errno: errno)
      }
      next += written
      remaining -= written
    }
  }
}
