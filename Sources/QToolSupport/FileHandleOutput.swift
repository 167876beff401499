import Foundation

#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

/// Unbuffered writes to the standard streams, and the check that what went to stdout arrived.
///
/// A failed write to stdout (a full disk, `/dev/full`, an I/O error) ends the tool with one
/// line on stderr and `failureStatus`; a closed pipe (`EPIPE`) ends it quietly, as SIGPIPE
/// ends coreutils (`qinspect M | head -1`). `StandardOutputCheck.install` extends the same
/// to what `print` buffered, at exit, as gnulib's `close_stdout` does.
enum FileHandleOutput {
  /// The exit status for a failed write to stdout: 1, or 2 for qdiff (trouble, as diff(1)).
  nonisolated(unsafe) static var failureStatus: Int32 = 1

  static func writeStderr(_ string: String) {
    write(string, to: 2)
  }

  /// Writes all of `string`, retrying short writes; a failure on stdout ends the process.
  static func write(_ string: String, to descriptor: Int32) {
    var s = string
    s.withUTF8 { buffer in
      var offset = 0
      while offset < buffer.count {
        guard let base = buffer.baseAddress else { return }
        let n = Glibc.write(descriptor, base + offset, buffer.count - offset)
        if n < 0 && errno == EINTR { continue }
        if n <= 0 {
          if descriptor == STDOUT_FILENO { standardOutputFailed(n < 0 ? errno : EIO) }
          return
        }
        offset += n
      }
    }
  }

  /// Ends the process after a failed write to stdout: quietly on a closed pipe, otherwise
  /// with one line naming the error.
  static func standardOutputFailed(_ code: Int32) -> Never {
    if code == EPIPE {
      // Die of SIGPIPE as a tool that never ignored it would: no message, status 128+13.
      signal(SIGPIPE, SIG_DFL)
      raise(SIGPIPE)
      _exit(128 + SIGPIPE)
    }
    let message = strerror(code).map { String(cString: $0) } ?? "error \(code)"
    writeStderr("\(toolName): standard output: \(message)\n")
    _exit(failureStatus)
  }

  /// The name the tool was started as, for messages.
  static var toolName: String {
    (CommandLine.arguments.first.map { ($0 as NSString).lastPathComponent }).flatMap { $0.isEmpty ? nil : $0 } ?? "qtool"
  }
}

/// Makes a tool fail, instead of exiting 0, when its standard output could not be written.
public enum StandardOutputCheck {
  /// Flushes stdout at exit and checks it, so output buffered by `print` that never arrived
  /// (a full disk) ends the tool with one line and `failureStatus`, and a closed pipe quietly.
  public static func install(failureStatus: Int32 = 1) {
    FileHandleOutput.failureStatus = failureStatus
    atexit {
      // All streams: stdout is the only buffered one the tools write (`print`), and naming
      // the C global `stdout` is refused under strict concurrency.
      errno = 0
      if fflush(nil) != 0 {
        FileHandleOutput.standardOutputFailed(errno != 0 ? errno : EIO)
      }
    }
  }
}
