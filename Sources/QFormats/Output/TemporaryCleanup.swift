import Dispatch
import Foundation

#if canImport(Glibc)
  import Glibc
#endif

/// Temporary files and folders that must not outlive the process when it is interrupted.
///
/// While anything is registered, SIGINT, SIGTERM and SIGHUP remove every registered path and
/// end the process with 128 + the signal number, as a shell reports a death by signal; when the
/// last path is unregistered the default dispositions come back. SIGKILL cannot be caught:
/// `StaleTemporaries` removes what such a run left the next time the same output is written.
public enum TemporaryCleanup {
  public static let signals: [Int32] = [SIGINT, SIGTERM, SIGHUP]

  private static let lock = NSLock()
  nonisolated(unsafe) private static var paths: Set<String> = []
  nonisolated(unsafe) private static var sources: [DispatchSourceSignal] = []

  /// Removes `path` if a signal ends the process before `unregister(_:)`.
  public static func register(_ path: String) {
    register(path) { () throws(Never) in }
  }

  /// Registers `path` and runs `create`, which makes it, as one step: the handlers are in place
  /// before the path exists, and a signal's handler, which holds the lock until the process
  /// ends, cannot remove the path while it is being made and so leave it behind. A failed
  /// `create` leaves nothing registered.
  public static func register<Failure: Error>(
    _ path: String, creating create: () throws(Failure) -> Void
  ) throws(Failure) {
    lock.lock()
    defer { lock.unlock() }
    installHandlers()
    paths.insert(path)
    do {
      try create()
    } catch {
      paths.remove(path)
      if paths.isEmpty { removeHandlers() }
      throw error
    }
  }

  /// Stops watching `path` (it was renamed into place or removed).
  public static func unregister(_ path: String) {
    lock.lock()
    defer { lock.unlock() }
    paths.remove(path)
    if paths.isEmpty { removeHandlers() }
  }

  /// Called with the lock held.
  private static func installHandlers() {
    guard sources.isEmpty else { return }
    for number in signals {
      signal(number, SIG_IGN)
      let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
      source.setEventHandler { removeAllAndExit(signal: number) }
      source.resume()
      sources.append(source)
    }
  }

  /// Called with the lock held.
  private static func removeHandlers() {
    guard !sources.isEmpty else { return }
    for source in sources { source.cancel() }
    sources = []
    for number in signals { signal(number, SIG_DFL) }
  }

  private static func removeAllAndExit(signal number: Int32) -> Never {
    lock.lock()
    let doomed = paths
    for path in doomed { try? FileManager.default.removeItem(atPath: path) }
    // Held until exit so no other thread renames a half-cleaned temporary into place.
    exit(128 + number)
  }
}
