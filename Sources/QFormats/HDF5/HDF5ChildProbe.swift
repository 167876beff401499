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
/// about to run (`HDF5File.readStructure`), so it meets every libhdf5 call opening makes. If it
/// dies by a signal or a sanitizer abort, or does not finish within `timeout`, the file is refused
/// with an error and the parent never opens it. If it meets a clean libhdf5 error it exits with
/// `cleanErrorStatus`, and the parent opens the file itself, which reports that error in detail.
///
/// The child does not exec. It is forked with the library lock held, so no other thread is inside
/// libhdf5 at that moment, and the parent's own libhdf5 state is untouched: the parent opens the
/// file only after the child has ended. The child leaves with `_exit`, which runs no atexit
/// handlers and flushes no libhdf5 state. Tensor data is not read, only metadata. A lock that
/// another thread held at the fork (the allocator's, the Swift runtime's) stays held in the child;
/// should the child need it, it waits until `timeout` and the file is reported as not read in time.
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

  /// A running child, and the read end of a pipe whose only writer is the child: the pipe reports
  /// end of file the moment the child is gone, however it ended.
  struct Child {
    var id: pid_t
    var exitPipe: Int32
  }

  /// Forks a child that runs `body` and exits with the status it returns.
  ///
  /// The corresponding C functions are `pipe` and `fork`.
  static func start(path: String, _ body: () -> Int32) throws(HDF5Error) -> Child {
    let (child, failure) = HDF5Library.locked { () -> (Child?, (operation: String, errno: Int32)?) in
      var ends: [Int32] = [-1, -1]
      guard pipe(&ends) == 0 else { return (nil, ("pipe", errno)) }
      // Programs started by other threads must not keep the write end open.
      for end in ends { _ = fcntl(end, F_SETFD, FD_CLOEXEC) }
      let id = fork()
      if id == 0 {
        HDF5Library.isProbeChild = true
        close(ends[0])
        prepareChild()
        _exit(body())
      }
      let forkErrno = errno
      close(ends[1])
      guard id > 0 else {
        close(ends[0])
        return (nil, ("fork", forkErrno))
      }
      return (Child(id: id, exitPipe: ends[0]), nil)
    }
    guard let child else {
      throw HDF5Error.io(path: path, operation: failure?.operation ?? "fork", errno: failure?.errno ?? 0)
    }
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
  /// The corresponding C functions are `poll` and `waitpid`.
  static func wait(for child: Child, path: String, timeout: Duration) throws(HDF5Error) -> Outcome {
    defer { close(child.exitPipe) }
    let clock = ContinuousClock()
    let deadline = clock.now + timeout
    var entry = pollfd(fd: child.exitPipe, events: Int16(POLLIN), revents: 0)
    var ended = false
    while !ended {
      let ready = poll(&entry, 1, milliseconds(until: deadline, on: clock))
      if ready < 0 {
        guard errno == EINTR else { throw HDF5Error.io(path: path, operation: "poll", errno: errno) }
        continue
      }
      // The child writes nothing, so the pipe is readable only at end of file: the child is gone.
      ended = ready > 0
      if !ended, clock.now >= deadline { break }
    }
    var status: Int32 = 0
    if !ended {
      // A child that ended just now, or whose pipe another process still holds, has not hung.
      if try reap(child, path: path, status: &status, options: WNOHANG) { return outcome(status) }
      kill(child.id, SIGKILL)
    }
    _ = try reap(child, path: path, status: &status, options: 0)
    let how = outcome(status)
    return !ended && how == .signalled(SIGKILL) ? .timedOut : how
  }

  /// Collects the child's status; false when `WNOHANG` finds it still running.
  private static func reap(
    _ child: Child, path: String, status: inout Int32, options: Int32
  ) throws(HDF5Error) -> Bool {
    while true {
      let result = waitpid(child.id, &status, options)
      if result == child.id { return true }
      if result == 0 { return false }
      guard errno == EINTR else { throw HDF5Error.io(path: path, operation: "waitpid", errno: errno) }
    }
  }

  /// `poll`'s timeout in whole milliseconds, rounded up, until `deadline`.
  private static func milliseconds(until deadline: ContinuousClock.Instant, on clock: ContinuousClock) -> Int32 {
    let left = clock.now.duration(to: deadline)
    guard left > .zero else { return 0 }
    let parts = left.components
    let total = parts.seconds * 1000 + (parts.attoseconds + 999_999_999_999_999) / 1_000_000_000_000_000
    return Int32(clamping: total)
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
