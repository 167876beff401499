import CFileSystem
import Foundation

#if canImport(Glibc)
  import Glibc
#endif

/// An output path checked against the run's inputs before any work starts, and put in place
/// at the end with one atomic rename that re-checks what it replaces.
///
/// The rules, in every tool that writes:
/// - never over, around or inside an input (real paths are compared, so symlinks and `..`
///   do not hide an input);
/// - never a device, FIFO or socket;
/// - an existing path only when `replace` is set, and then only an entry of the same kind
///   (file for file, folder for folder); a folder only when it looks like a tool output: plain
///   files with a model or adapter among them, and neither the current folder nor one of its
///   parents;
/// - without `replace`, a path that appears while the run works is not replaced either: the
///   final rename uses `RENAME_NOREPLACE`.
public struct OutputDestination: Sendable {
  public enum Kind: String, Sendable { case file, folder }

  /// The path as given, for messages.
  public let path: String
  /// Absolute, with every folder above the last component resolved.
  public let resolvedPath: String
  public let kind: Kind
  public let replace: Bool
  private let resolvedInputs: [(given: String, real: String)]

  /// Checks `path` as an output of `kind` for a run that reads `inputs`.
  /// - Throws: `OutputError` when a rule above refuses the path.
  public init(path: String, kind: Kind, replace: Bool, inputs: [String]) throws(OutputError) {
    self.path = path
    self.kind = kind
    self.replace = replace
    resolvedPath = Self.resolveOutput(path)
    resolvedInputs = inputs.filter { $0 != "-" }.map { ($0, Self.resolveFully($0)) }
    try checkInputs()
    _ = try existingEntry()
  }

  /// The folder the output goes in; temporaries are made there so the final rename stays on
  /// one file system.
  public var parent: String {
    let parent = (resolvedPath as NSString).deletingLastPathComponent
    return parent.isEmpty ? "/" : parent
  }

  /// The output's last path component.
  public var name: String { (resolvedPath as NSString).lastPathComponent }

  /// Renames the finished `temporary` (a file or folder beside the output) into place,
  /// replacing an existing entry only as the rules allow; the replaced entry is removed.
  public func install(from temporary: String) throws(OutputError) {
    let existing = try existingEntry()
    if existing == nil || !replace {
      if cfs_rename(temporary, resolvedPath, CFS_RENAME_NOREPLACE) == 0 { return }
      let code = errno
      if code == EEXIST {
        guard replace else { throw .exists(path: path) }
        // Appeared meanwhile: check it as any existing entry, then swap.
        _ = try existingEntry()
      } else if code == EINVAL || code == ENOSYS {
        // A file system without the flag: the check above is the best there is.
        if existing != nil && !replace { throw .exists(path: path) }
        if rename(temporary, resolvedPath) == 0 { return }
        throw .system(path: path, operation: "rename '\(temporary)' into place", errno: errno)
      } else {
        throw .system(path: path, operation: "rename '\(temporary)' into place", errno: code)
      }
    }
    if cfs_rename(temporary, resolvedPath, CFS_RENAME_EXCHANGE) == 0 {
      // The old output now sits at the temporary path.
      Self.removeTree(temporary)
      return
    }
    let code = errno
    guard code == EINVAL || code == ENOSYS else {
      throw .system(path: path, operation: "swap '\(temporary)' into place", errno: code)
    }
    let aside = temporary + ".old"
    guard rename(resolvedPath, aside) == 0 else {
      throw .system(path: path, operation: "move the old output aside", errno: errno)
    }
    guard rename(temporary, resolvedPath) == 0 else {
      let renameError = errno
      _ = rename(aside, resolvedPath)
      throw .system(path: path, operation: "rename '\(temporary)' into place", errno: renameError)
    }
    Self.removeTree(aside)
  }

  /// Refuses a device, FIFO or socket at `path`: the last check before a plain rename over a
  /// path that no `OutputDestination` guards (a training checkpoint, say).
  public static func refuseSpecialFile(at path: String) throws(OutputError) {
    var info = stat()
    guard lstat(path, &info) == 0 else { return }
    if let kind = specialKind(info.st_mode) { throw .specialFile(path: path, kind: kind) }
  }

  static func specialKind(_ mode: mode_t) -> String? {
    switch mode & S_IFMT {
    case S_IFREG, S_IFDIR, S_IFLNK: nil
    case S_IFCHR: "character device"
    case S_IFBLK: "block device"
    case S_IFIFO: "FIFO"
    case S_IFSOCK: "socket"
    default: "special file"
    }
  }

  // MARK: The rules

  private func checkInputs() throws(OutputError) {
    for input in resolvedInputs {
      if input.real == resolvedPath {
        throw .overlapsInput(path: path, input: input.given, relation: "is")
      }
      if Self.isInside(input.real, resolvedPath) {
        throw .overlapsInput(path: path, input: input.given, relation: "holds")
      }
      if Self.isInside(resolvedPath, input.real) {
        throw .overlapsInput(path: path, input: input.given, relation: "lies inside")
      }
    }
  }

  /// What sits at the output path now, after the rules for replacing it were checked.
  private func existingEntry() throws(OutputError) -> Kind? {
    var info = stat()
    guard lstat(resolvedPath, &info) == 0 else {
      if errno == ENOENT { return nil }
      throw .system(path: path, operation: "examine", errno: errno)
    }
    if let special = Self.specialKind(info.st_mode) { throw .specialFile(path: path, kind: special) }
    let isLink = (info.st_mode & S_IFMT) == S_IFLNK
    // A symbolic link is replaced itself, never what it points to.
    let existing: Kind = isLink ? kind : (info.st_mode & S_IFMT) == S_IFDIR ? .folder : .file
    guard replace else { throw .exists(path: path) }
    guard existing == kind else {
      throw .kindMismatch(path: path, existing: existing.rawValue, written: kind.rawValue)
    }
    if existing == .folder && !isLink { try checkReplaceableFolder() }
    return existing
  }

  /// A folder that `--force` may replace: not the working folder or above it, and holding only
  /// plain files with a model or adapter among them (or nothing).
  private func checkReplaceableFolder() throws(OutputError) {
    let current = Self.resolveFully(FileManager.default.currentDirectoryPath)
    if current == resolvedPath || Self.isInside(current, resolvedPath) {
      throw .notReplaceable(path: path, reason: "it is the current folder or holds it")
    }
    if let home = ProcessInfo.processInfo.environment["HOME"], Self.resolveFully(home) == resolvedPath {
      throw .notReplaceable(path: path, reason: "it is the home folder")
    }
    let names: [String]
    do { names = try FileManager.default.contentsOfDirectory(atPath: resolvedPath) } catch {
      throw .notReplaceable(path: path, reason: "its contents cannot be listed")
    }
    var holdsModel = names.isEmpty
    for name in names.sorted() {
      var info = stat()
      guard lstat(resolvedPath + "/" + name, &info) == 0 else { continue }
      if (info.st_mode & S_IFMT) == S_IFDIR {
        throw .notReplaceable(path: path, reason: "it holds the folder '\(name)', and a tool output holds only files")
      }
      if Self.isModelFile(name) { holdsModel = true }
    }
    if !holdsModel {
      throw .notReplaceable(
        path: path, reason: "it holds no model (config.json, adapter_config.json or a .safetensors file)")
    }
  }

  static func isModelFile(_ name: String) -> Bool {
    name == "config.json" || name == "adapter_config.json" || name.hasSuffix(".safetensors")
      || name == "model.safetensors.index.json"
  }

  // MARK: Paths

  /// Whether `path` lies strictly inside `folder` (both absolute and resolved).
  static func isInside(_ path: String, _ folder: String) -> Bool {
    folder == "/" ? path != "/" : path.hasPrefix(folder + "/")
  }

  /// The real path of an entry that exists; otherwise the deepest existing folder above it,
  /// resolved, with the rest appended.
  static func resolveFully(_ path: String) -> String {
    if let real = realPath(path) { return real }
    let absolute = absolutePath(path)
    let parent = (absolute as NSString).deletingLastPathComponent
    if parent == absolute || parent.isEmpty { return absolute }
    return join(resolveFully(parent), (absolute as NSString).lastPathComponent)
  }

  /// The output's path: folders above it resolved, the last component kept as it is unless it
  /// is `.` or `..`, so a symlink at the output is replaced rather than followed.
  static func resolveOutput(_ path: String) -> String {
    let absolute = absolutePath(path)
    let last = (absolute as NSString).lastPathComponent
    if last == "." || last == ".." || last == "/" { return resolveFully(absolute) }
    let parent = (absolute as NSString).deletingLastPathComponent
    return join(resolveFully(parent.isEmpty ? "/" : parent), last)
  }

  private static func join(_ folder: String, _ name: String) -> String {
    switch name {
    case ".", "": return folder
    case "..":
      let up = (folder as NSString).deletingLastPathComponent
      return up.isEmpty ? "/" : up
    default: return folder == "/" ? "/" + name : folder + "/" + name
    }
  }

  private static func absolutePath(_ path: String) -> String {
    let expanded = (path as NSString).expandingTildeInPath
    if expanded.hasPrefix("/") { return expanded }
    return FileManager.default.currentDirectoryPath + "/" + expanded
  }

  private static func realPath(_ path: String) -> String? {
    guard let resolved = realpath(path, nil) else { return nil }
    defer { free(resolved) }
    return String(cString: resolved)
  }

  /// Removes a file or a folder of files; errors are ignored (it is a leftover).
  static func removeTree(_ path: String) {
    try? FileManager.default.removeItem(atPath: path)
  }
}
