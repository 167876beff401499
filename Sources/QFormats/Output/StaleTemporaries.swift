import Foundation

#if canImport(Glibc)
  import Glibc
#endif

extension OutputDestination {
  /// Cleans up after runs for this output that were killed (SIGKILL, power loss).
  ///
  /// A run stages into `.NAME.tmp-PID` (a folder, or a file, then with a `-RANDOM` suffix)
  /// beside the output and, where a file system cannot swap two entries, moves an old output
  /// to `.NAME.tmp-PID.old` just before the final rename. For each such entry whose process
  /// no longer exists: an old output is renamed back when the output path is empty (the run
  /// died between its two renames), and everything else is removed. Entries of live
  /// processes, including other runs still working, are left alone.
  public func removeStaleTemporaries() {
    let manager = FileManager.default
    let prefix = "." + name + ".tmp-"
    guard let names = try? manager.contentsOfDirectory(atPath: parent) else { return }
    // Old outputs first, so that one is restored before anything is removed.
    for entry in names.sorted(by: { $0.hasSuffix(".old") && !$1.hasSuffix(".old") }) where entry.hasPrefix(prefix) {
      let rest = entry.dropFirst(prefix.count)
      let isOld = rest.hasSuffix(".old")
      let owner = (isOld ? rest.dropLast(4) : rest).prefix { $0 != "-" }
      guard let pid = pid_t(owner), pid > 0, pid != getpid() else { continue }
      guard kill(pid, 0) != 0, errno == ESRCH else { continue }
      let path = parent + "/" + entry
      if isOld, !manager.fileExists(atPath: resolvedPath), rename(path, resolvedPath) == 0 { continue }
      try? manager.removeItem(atPath: path)
    }
  }
}
