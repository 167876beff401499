import Foundation

/// Reads an HDF5 file's structure in a forked worker process before this process hands the file
/// to libhdf5.
///
/// libhdf5 1.10 has parser bugs that malformed files reach before any check of ours can look at
/// the bytes: decoding an attribute message reads past its buffer in `H5O__msg_iterate_real`
/// (`Fixtures/malformed-found/libhdf5_attribute_decode.h5`), and a crash there takes the whole
/// process with it. The worker has its own copy of the library and runs the same walk the parent
/// is about to run (`HDF5File.readStructure`), so it meets every libhdf5 call opening makes. If
/// it dies by a signal or a sanitizer abort, or does not answer within `timeout`, the file is
/// refused with an error and the parent never opens it. If it meets a clean libhdf5 error it
/// answers so, and the parent opens the file itself, which reports that error in detail. Tensor
/// data is not read, only metadata: the reader checks what it hands to `H5Dread` itself
/// (`HDF5File.checkChunkShape`, `HDF5File.checkCompactStorage`, `HDF5ElementKind.isBoolEnum`).
///
/// The worker persists. It is forked on the first request and then reads one file after another,
/// each path sent over a socket and each outcome answered with one byte, because the fork, not
/// the walk, is what a probe costs: fork copies the page tables of the whole process (in the
/// AddressSanitizer build of the fuzzer, 8 ms against the walk's 2 ms). It is forked again only
/// after it died or hung, and it exits when its socket closes, so it ends with the parent.
///
/// A worker that has read files carries what they did to its libhdf5: a malformed file may damage
/// the library's heap without crashing it, and the next file may then crash it. So a file is
/// refused only when a freshly forked worker, one that has read no earlier file, crashed or hung
/// on it: when a reused worker dies or hangs, a fresh one is forked and given the same file once
/// more, and its outcome stands. A pass or a clean error from a reused worker is taken as it is.
///
/// Requests are serialized: the worker is process-wide state, and one caller at a time sends it a
/// path and waits for the answer, under `lock`. How the worker is forked and what it runs is in
/// `HDF5ChildProbe+Worker.swift` and `HDF5ChildProbe+Serve.swift`.
///
/// Marked `@unchecked Sendable` because `worker` is read and written only with `lock` held.
final class HDF5ChildProbe: @unchecked Sendable {
  /// How long a worker may take to answer; reading the metadata of a valid file takes
  /// milliseconds. A file a reused worker hung on is tried again, so it may take twice this.
  static let timeout: Duration = .seconds(10)

  /// How long `shutDown` waits for an idle worker to exit on its own before killing it.
  static let exitGrace: Duration = .seconds(2)

  /// The worker every `HDF5File` is read through first; it runs `HDF5File.readStructure`.
  static let shared = HDF5ChildProbe { path throws(HDF5Error) in
    _ = try HDF5File.readStructure(path: path)
  }

  /// How a request ended.
  enum Outcome: Equatable {
    case passed
    case failedCleanly
    case signalled(Int32)
    case exited(Int32)
    case timedOut

    /// True when the worker answered, false when it died or hung and is gone.
    var isAnswer: Bool { self == .passed || self == .failedCleanly }
  }

  /// What the worker runs for each path; a thrown error is a clean failure.
  private let walk: @Sendable (String) throws(HDF5Error) -> Void
  /// Serializes requests and guards `worker`.
  private let lock = NSLock()
  /// The running worker; nil before the first request and after a worker died, hung or was shut down.
  private var worker: Worker?

  /// A probe whose worker runs `walk` on each path it is sent.
  init(walk: @escaping @Sendable (String) throws(HDF5Error) -> Void) {
    self.walk = walk
  }

  deinit {
    _ = shutDown()
  }

  /// Throws when libhdf5 crashed or hung on `path` in a fresh worker; returns when the walk passed
  /// or failed cleanly, so that the caller runs it itself.
  func check(path: String, timeout: Duration = timeout) throws(HDF5Error) {
    let outcome = try outcome(path: path, timeout: timeout)
    if let error = Self.error(for: outcome, path: path, timeout: timeout) { throw error }
  }

  /// How the walk of `path` ended; a death or hang of a reused worker is retried once in a fresh one.
  func outcome(path: String, timeout: Duration = timeout) throws(HDF5Error) -> Outcome {
    lock.lock()
    defer { lock.unlock() }
    let first = try attempt(path: path, timeout: timeout)
    guard !first.outcome.isAnswer, !first.byFreshWorker else { return first.outcome }
    return try attempt(path: path, timeout: timeout).outcome
  }

  /// Sends `path` to the worker, forking one first if none is running; needs `lock` held.
  private func attempt(
    path: String, timeout: Duration
  ) throws(HDF5Error) -> (outcome: Outcome, byFreshWorker: Bool) {
    var running: Worker
    if let worker {
      running = worker
    } else {
      running = try Worker.start(path: path, walk: walk)
    }
    let byFreshWorker = running.answered == 0
    do {
      let outcome = try running.run(path: path, request: Self.workerPath(for: path), timeout: timeout)
      worker = outcome.isAnswer ? running : nil
      return (outcome, byFreshWorker)
    } catch {
      worker = nil
      throw error
    }
  }

  /// `path` as the worker must spell it to reach the file this process means.
  ///
  /// The worker was forked earlier and lives in its own process: `/proc/self` (and `/dev/fd`, which
  /// points there) names the worker, not this process, whose descriptors (`Checkpoint` reads a
  /// decompressed `.h5.zst` through one) the worker does not have; and a relative path resolves
  /// against the working directory this process had at the fork, which it may have changed since.
  static func workerPath(for path: String) -> String {
    for prefix in ["/proc/self/", "/dev/fd/"] where path.hasPrefix(prefix) {
      let rest = path.dropFirst(prefix.count)
      return "/proc/\(getpid())/" + (prefix == "/dev/fd/" ? "fd/" : "") + rest
    }
    if path.isEmpty || path.hasPrefix("/") { return path }
    return FileManager.default.currentDirectoryPath + "/" + path
  }

  /// The running worker's process id, nil when none is running.
  var workerID: pid_t? {
    lock.lock()
    defer { lock.unlock() }
    return worker?.id
  }

  /// Closes the running worker's socket and collects it once it has exited (killing it if it has
  /// not within `exitGrace`); returns how it ended, nil when none was running or `waitpid` failed.
  @discardableResult
  func shutDown() -> Outcome? {
    lock.lock()
    defer { lock.unlock() }
    guard let running = worker else { return nil }
    worker = nil
    return running.stop(grace: Self.exitGrace)
  }

  /// The error a request's end stands for; nil when the caller should go on and open the file.
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
