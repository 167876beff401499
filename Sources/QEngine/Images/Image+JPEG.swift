import CJPEG
import Foundation

#if canImport(Glibc)
  import Glibc
#endif

/// Everything the decoding thread touches, in raw memory the caller owns.
///
/// libjpeg reports a fatal error by calling `error_exit`, which must not return, and Swift
/// cannot `setjmp`. So the decoding runs on a thread of its own, and `error_exit` records the
/// message and ends that thread with `pthread_exit`; the caller joins, sees the flag and frees
/// this block and libjpeg's pools. The thread's Swift frames hold no references, so ending it
/// early leaks nothing.
private struct JPEGJob {
  var decompressor: UnsafeMutablePointer<jpeg_decompress_struct>
  var errorManager: UnsafeMutablePointer<jpeg_error_mgr>
  var source: UnsafePointer<UInt8>?
  var sourceCount: UInt
  var width = 0
  var height = 0
  var pixels: UnsafeMutablePointer<UInt8>?
  var failed = false
  var tooLarge = false
  var truncated = false
  /// `JMSG_LENGTH_MAX` bytes for libjpeg's formatted message.
  var message: UnsafeMutablePointer<CChar>
}

private let jpegMessageCapacity = 200

/// libjpeg's fatal-error hook: keep the message, end the decoding thread.
private let jpegErrorExit: @convention(c) (j_common_ptr?) -> Void = { common in
  if let common, let job = common.pointee.client_data?.assumingMemoryBound(to: JPEGJob.self) {
    common.pointee.err.pointee.format_message(common, job.pointee.message)
    job.pointee.failed = true
  }
  pthread_exit(nil)
}

/// Warnings go nowhere (libjpeg would print them); a premature end of data is remembered, since
/// libjpeg pads a truncated file with grey rather than failing.
private let jpegEmitMessage: @convention(c) (j_common_ptr?, Int32) -> Void = { common, level in
  guard level < 0, let common, let job = common.pointee.client_data?.assumingMemoryBound(to: JPEGJob.self)
  else { return }
  common.pointee.err.pointee.num_warnings += 1
  // The message codes live in jerror.h, which the module does not import; the text is stable.
  common.pointee.err.pointee.format_message(common, job.pointee.message)
  if String(cString: job.pointee.message).hasPrefix("Premature end of JPEG file") {
    job.pointee.truncated = true
  }
}

private let jpegDecodeThread: @convention(c) (UnsafeMutableRawPointer?) -> UnsafeMutableRawPointer? = { raw in
  guard let job = raw?.assumingMemoryBound(to: JPEGJob.self) else { return nil }
  let decompressor = job.pointee.decompressor
  decompressor.pointee.err = jpeg_std_error(job.pointee.errorManager)
  job.pointee.errorManager.pointee.error_exit = jpegErrorExit
  job.pointee.errorManager.pointee.emit_message = jpegEmitMessage
  jpeg_CreateDecompress(decompressor, JPEG_LIB_VERSION, MemoryLayout<jpeg_decompress_struct>.size)
  decompressor.pointee.client_data = UnsafeMutableRawPointer(job)
  jpeg_mem_src(decompressor, job.pointee.source, job.pointee.sourceCount)
  _ = jpeg_read_header(decompressor, 1)
  decompressor.pointee.out_color_space = JCS_RGB
  _ = jpeg_start_decompress(decompressor)
  let width = Int(decompressor.pointee.output_width)
  let height = Int(decompressor.pointee.output_height)
  job.pointee.width = width
  job.pointee.height = height
  guard decompressor.pointee.output_components == 3, width > 0, height > 0,
    width * height <= Image.maximumPixelCount
  else {
    job.pointee.tooLarge = true
    return nil
  }
  let pixels = UnsafeMutablePointer<UInt8>.allocate(capacity: width * height * 3)
  job.pointee.pixels = pixels
  while decompressor.pointee.output_scanline < decompressor.pointee.output_height {
    var row: JSAMPROW? = pixels + Int(decompressor.pointee.output_scanline) * width * 3
    _ = jpeg_read_scanlines(decompressor, &row, 1)
  }
  _ = jpeg_finish_decompress(decompressor)
  return nil
}

extension Image {
  /// Decodes JPEG through libjpeg(-turbo) with its default (PIL's) settings: integer IDCT and
  /// fancy upsampling, colour converted to RGB by the library.
  static func decodeJPEG(_ data: Data, location: String) throws(ImageError) -> RGBImage {
    let decompressor = UnsafeMutablePointer<jpeg_decompress_struct>.allocate(capacity: 1)
    decompressor.initialize(to: jpeg_decompress_struct())
    let errorManager = UnsafeMutablePointer<jpeg_error_mgr>.allocate(capacity: 1)
    errorManager.initialize(to: jpeg_error_mgr())
    let message = UnsafeMutablePointer<CChar>.allocate(capacity: jpegMessageCapacity)
    message.initialize(repeating: 0, count: jpegMessageCapacity)
    let job = UnsafeMutablePointer<JPEGJob>.allocate(capacity: 1)
    defer {
      jpeg_destroy_decompress(decompressor)
      job.pointee.pixels?.deallocate()
      job.deallocate()
      message.deallocate()
      errorManager.deallocate()
      decompressor.deallocate()
    }
    let started: Int32 = data.withUnsafeBytes { raw in
      job.initialize(
        to: JPEGJob(
          decompressor: decompressor, errorManager: errorManager,
          source: raw.bindMemory(to: UInt8.self).baseAddress, sourceCount: UInt(raw.count),
          message: message))
      var thread = pthread_t()
      let created = pthread_create(&thread, nil, jpegDecodeThread, UnsafeMutableRawPointer(job))
      guard created == 0 else { return created }
      return pthread_join(thread, nil)
    }
    guard started == 0 else {
      throw .decodeFailed(path: location, format: "JPEG", reason: "cannot start a decoding thread (error \(started))")
    }
    let state = job.pointee
    if state.failed {
      throw .decodeFailed(path: location, format: "JPEG", reason: String(cString: message))
    }
    if state.tooLarge { throw .tooLarge(path: location, width: state.width, height: state.height) }
    if state.truncated {
      throw .decodeFailed(path: location, format: "JPEG", reason: "premature end of data")
    }
    guard let pixels = state.pixels else {
      throw .decodeFailed(path: location, format: "JPEG", reason: "no pixels decoded")
    }
    let rgb = [UInt8](UnsafeBufferPointer(start: pixels, count: state.width * state.height * 3))
    return RGBImage(width: state.width, height: state.height, pixels: rgb)
  }
}
