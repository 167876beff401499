#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

/// Reads an HDF5 file's structure in a forked child before this process hands the file to libhdf5.
///
/// libhdf5 1.10 has parser bugs that malformed files reach before any check of ours can look at
/// the bytes: decoding an attribute message reads past its buffer in `H5O__msg_iterate_real`
/// (`Fixtures/malformed-found/libhdf5_attribute_decode.h5`), and a crash there takes the whole
/// process with it. The child has its own copy of the library and runs the same walk the parent is
/// about to run (`HDF5File.readStructure`), so it meets every code path the parent will take. If it
/// dies by a signal or a sanitizer abort, or does not finish within `timeout`, the file is refused
/// with an error and the parent never opens it. If it meets a clean libhdf5 error it exits with
/// `cleanErrorStatus`, and the parent opens the file itself, which reports that error in detail.
///
/// The child does not exec. It is forked with the library lock held, so no other thread is inside
/// libhdf5 at that moment, and the parent's own libhdf5 state is untouched: the parent opens the
/// file only after the child has ended. The child leaves with `_exit`, which runs no atexit
/// handlers and flushes no libhdf5 state. Tensor data is not read, only metadata.
enum HDF5ChildProbe {
  /// How long the child may take; reading the metadata of a valid file takes milliseconds.
  static let timeout: Duration = .seconds(10)
  /// The child's exit status when the walk succeeded.
  static let passedStatus: Int32 = 0
  /// The child's exit status when libhdf5 or our checks reported an error without crashing.
  static let cleanErrorStatus: Int32 = 3

  /// How a child ended.
  enum Outcome: Equatable {
    case passed
    case failedCleanly
    case signalled(Int32)
    case exited(Int32)
    case timedOut
  }

  /// Runs `walk` in a child and throws when the child crashed or hung; returns when it passed or
  /// failed cleanly, so that the caller runs `walk` itself.
  static func check(
    path: String, timeout: Duration = timeout, walk: () throws(HDF5Error) -> Void
  ) throws(HDF5Error) {
    let child = try start(path: path) {
      do {
        try walk()
        return passedStatus
      } catch {
        return cleanErrorStatus
      }
    }
    let outcome = try wait(for: child, path: path, timeout: timeout)
    if let error = error(for: outcome, path: path, timeout: timeout) { throw error }
  }

  /// Forks a child that runs `body` and exits with the status it returns.
  ///
  /// The corresponding C function is `fork`.
  static func start(path: String, _ body: () -> Int32) throws(HDF5Error) -> pid_t {
    let (child, forkErrno) = HDF5Library.locked { () -> (pid_t, Int32) in
      let child = fork()
      if child == 0 {
        HDF5Library.isProbeChild = true
        prepareChild()
        _exit(body())
      }
      return (child, errno)
    }
    guard child > 0 else { throw HDF5Error.io(path: path, operation: "fork", errno: forkErrno) }
    return child
  }

  /// Lets a crash end the child at once, as the signal it is.
  ///
  /// The handlers inherited from the parent would otherwise act for the parent: Swift's backtracer
  /// symbolicates for a long time, and under libFuzzer the fuzzer's crash handlers and the
  /// sanitizer's death callback record the child's crash as the fuzzer's own.
  private static func prepareChild() {
    for crash in [SIGSEGV, SIGBUS, SIGABRT, SIGILL, SIGFPE, SIGTRAP] {
      signal(crash, SIG_DFL)
    }
    // Present only in sanitizer builds; a null handle searches the whole process.
    if let setDeathCallback = dlsym(nil, "__sanitizer_set_death_callback") {
      typealias Setter = @convention(c) ((@convention(c) () -> Void)?) -> Void
      unsafeBitCast(setDeathCallback, to: Setter.self)(nil)
    }
  }

  /// Waits for `child` to end, killing it once `timeout` has passed.
  ///
  /// The corresponding C function is `waitpid`.
  static func wait(for child: pid_t, path: String, timeout: Duration) throws(HDF5Error) -> Outcome {
    let clock = ContinuousClock()
    let deadline = clock.now + timeout
    // Most children end within milliseconds; poll often at first, then every 10 ms.
    var pause = 50
    var status: Int32 = 0
    while true {
      let result = waitpid(child, &status, WNOHANG)
      if result == child { return outcome(status) }
      if result < 0 {
        if errno == EINTR { continue }
        throw HDF5Error.io(path: path, operation: "waitpid", errno: errno)
      }
      if clock.now >= deadline { break }
      usleep(UInt32(pause))
      pause = min(pause * 2, 10_000)
    }
    kill(child, SIGKILL)
    while waitpid(child, &status, 0) < 0 {
      guard errno == EINTR else { throw HDF5Error.io(path: path, operation: "waitpid", errno: errno) }
    }
    // A child that ended by itself just before the kill still reports how it ended.
    let ended = outcome(status)
    return ended == .signalled(SIGKILL) ? .timedOut : ended
  }

  /// Decodes a `waitpid` status (the `WIFEXITED` and `WTERMSIG` macros, which Swift does not import).
  static func outcome(_ status: Int32) -> Outcome {
    let signal = status & 0x7f
    if signal == 0 {
      let code = (status >> 8) & 0xff
      switch code {
      case passedStatus: return .passed
      case cleanErrorStatus: return .failedCleanly
      default: return .exited(code)
      }
    }
    return .signalled(signal)
  }

  /// The error a child's end stands for; nil when the parent should go on and open the file.
  static func error(for outcome: Outcome, path: String, timeout: Duration) -> HDF5Error? {
    switch outcome {
    case .passed, .failedCleanly:
      return nil
    case .signalled(let signal):
      return .libraryCrashed(path: path, termination: "signal \(signal)")
    case .exited(let code):
      return .libraryCrashed(path: path, termination: "exit status \(code)")
    case .timedOut:
      let parts = timeout.components
      return .libraryTimedOut(
        path: path, seconds: Double(parts.seconds) + Double(parts.attoseconds) / 1e18)
    }
  }
}
