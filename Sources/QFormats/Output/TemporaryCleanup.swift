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
    lock.lock()
    defer { lock.unlock() }
    paths.insert(path)
    guard sources.isEmpty else { return }
    for number in signals {
      signal(number, SIG_IGN)
      let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
      source.setEventHandler { removeAllAndExit(signal: number) }
      source.resume()
      sources.append(source)
    }
  }

  /// Stops watching `path` (it was renamed into place or removed).
  public static func unregister(_ path: String) {
    lock.lock()
    defer { lock.unlock() }
    paths.remove(path)
    guard paths.isEmpty, !sources.isEmpty else { return }
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
