import CZstd

/// zstd frames for `.qweight` payloads (`compression = zstd` in `Formats/qpack.md`).
public enum PackCompression {
  /// The zstd level writers use: zstd's default, a good speed/ratio balance for codes.
  public static let defaultLevel: Int32 = 3

  /// One zstd frame holding `bytes`, with its content size recorded.
  ///
  /// The corresponding C function is `ZSTD_compress`.
  public static func compress(
    _ bytes: UnsafeRawBufferPointer, level: Int32 = defaultLevel, location: String, tensor: String
  ) throws(PackError) -> [UInt8] {
    let bound = ZSTD_compressBound(bytes.count)
    var frame = [UInt8](repeating: 0, count: bound)
    let written = frame.withUnsafeMutableBytes { out in
      ZSTD_compress(out.baseAddress, out.count, bytes.baseAddress, bytes.count, level)
    }
    if ZSTD_isError(written) != 0 {
      throw .compression(location: location, tensor: tensor, reason: "ZSTD_compress failed: \(errorName(written))")
    }
    frame.removeLast(bound - written)
    return frame
  }

  /// The content of the single zstd frame `frame`, which must be exactly `expectedCount` bytes.
  ///
  /// The declared size is checked before anything is allocated, so a hostile frame cannot make
  /// the reader allocate more than the description implies. The corresponding C function is
  /// `ZSTD_decompress`.
  public static func decompress(
    _ frame: UnsafeRawBufferPointer, expectedCount: Int, location: String, tensor: String
  ) throws(PackError) -> [UInt8] {
    func fail(_ reason: String) -> PackError { .compression(location: location, tensor: tensor, reason: reason) }
    let declared = ZSTD_getFrameContentSize(frame.baseAddress, frame.count)
    if declared == ZSTD_CONTENTSIZE_ERROR { throw fail("'.qweight' is not a zstd frame") }
    if declared == ZSTD_CONTENTSIZE_UNKNOWN { throw fail("'.qweight' zstd frame does not record its size") }
    guard declared == UInt64(expectedCount) else {
      throw fail("'.qweight' zstd frame holds \(declared) bytes, expected \(expectedCount)")
    }
    var out = [UInt8](repeating: 0, count: expectedCount)
    let written = out.withUnsafeMutableBytes { destination in
      ZSTD_decompress(destination.baseAddress, destination.count, frame.baseAddress, frame.count)
    }
    if ZSTD_isError(written) != 0 { throw fail("ZSTD_decompress failed: \(errorName(written))") }
    guard written == expectedCount else {
      throw fail("'.qweight' zstd frame decompressed to \(written) bytes, expected \(expectedCount)")
    }
    return out
  }

  static func errorName(_ code: Int) -> String {
    guard let name = ZSTD_getErrorName(code) else { return "error \(code)" }
    return String(cString: name)
  }
}
