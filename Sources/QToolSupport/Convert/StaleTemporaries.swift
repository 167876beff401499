import Foundation

#if canImport(Glibc)
  import Glibc
#endif

extension StagedFolder {
  /// Cleans up after runs for `destination` that were killed (SIGKILL, power loss).
  ///
  /// A run stages into `.NAME.tmp-PID` beside the output and, when replacing an old output,
  /// moves it aside to `.NAME.tmp-PID.old` just before the final rename. For each such entry
  /// whose process no longer exists: an old output is renamed back when the output path is
  /// empty (the run died between its two renames), and everything else is removed. Entries of
  /// live processes, including other runs still working, are left alone.
  static func removeStaleTemporaries(of destination: URL) {
    let manager = FileManager.default
    let parent = destination.deletingLastPathComponent().path
    let prefix = "." + destination.lastPathComponent + ".tmp-"
    guard let names = try? manager.contentsOfDirectory(atPath: parent) else { return }
    // Old outputs first, so that one is restored before anything is removed.
    for name in names.sorted(by: { $0.hasSuffix(".old") && !$1.hasSuffix(".old") }) where name.hasPrefix(prefix) {
      let rest = name.dropFirst(prefix.count)
      let isOld = rest.hasSuffix(".old")
      guard let pid = pid_t(isOld ? rest.dropLast(4) : rest), pid > 0, pid != getpid() else { continue }
      guard kill(pid, 0) != 0, errno == ESRCH else { continue }
      let path = parent + "/" + name
      if isOld, !manager.fileExists(atPath: destination.path), rename(path, destination.path) == 0 { continue }
      try? manager.removeItem(atPath: path)
    }
  }
}
