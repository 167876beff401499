import Foundation

#if canImport(Glibc)
  import Glibc
#endif

/// A seeded generator (SplitMix64), so a failing fault-injection run can be repeated.
struct SeededGenerator: RandomNumberGenerator {
  var state: UInt64
  init(seed: UInt64) { state = seed }
  mutating func next() -> UInt64 {
    state &+= 0x9E37_79B9_7F4A_7C15
    var z = state
    z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
    z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
    return z ^ (z >> 31)
  }
}

/// A fresh folder under the system's temporary directory, removed by the caller.
func makeScratchFolder(_ label: String) throws -> URL {
  let url = FileManager.default.temporaryDirectory
    .appendingPathComponent("qtool-\(label)-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
  try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
  return url
}

/// Writes a safetensors file of F16 `[rows, 1024]` linear weights with random values, about
/// `megabytes` in size, so conversions take long enough to be interrupted.
func writeRandomModel(to url: URL, megabytes: Int, seed: UInt64) throws {
  let columns = 1024
  let rows = 256
  let tensorBytes = rows * columns * 2
  let count = max(1, megabytes * (1 << 20) / tensorBytes)
  var entries: [String] = []
  for index in 0..<count {
    let begin = index * tensorBytes
    entries.append(
      #""model.layers.\#(index).mlp.down_proj.weight":{"dtype":"F16","shape":[\#(rows),\#(columns)],"data_offsets":[\#(begin),\#(begin + tensorBytes)]}"#)
  }
  var header = Array(("{" + entries.joined(separator: ",") + "}").utf8)
  while header.count % 8 != 0 { header.append(0x20) }
  var bytes = withUnsafeBytes(of: UInt64(header.count).littleEndian) { [UInt8]($0) }
  bytes += header
  var generator = SeededGenerator(seed: seed)
  var values = [Float16](repeating: 0, count: rows * columns)
  for _ in 0..<count {
    for i in values.indices { values[i] = Float16(Float.random(in: -0.1...0.1, using: &generator)) }
    values.withUnsafeBytes { bytes += $0 }
  }
  try Data(bytes).write(to: url)
}

/// Every regular file below `folder` by relative path, with its bytes.
func folderContents(_ folder: URL) throws -> [String: Data] {
  var contents: [String: Data] = [:]
  let manager = FileManager.default
  guard let enumerator = manager.enumerator(atPath: folder.path) else { return [:] }
  while let name = enumerator.nextObject() as? String {
    var isDirectory: ObjCBool = false
    let path = folder.path + "/" + name
    if manager.fileExists(atPath: path, isDirectory: &isDirectory), !isDirectory.boolValue {
      contents[name] = try Data(contentsOf: URL(fileURLWithPath: path))
    }
  }
  return contents
}

/// The entries of `folder` that look like qconvert's or AtomicFile's temporaries.
func temporaries(in folder: URL) throws -> [String] {
  try FileManager.default.contentsOfDirectory(atPath: folder.path).filter { $0.contains(".tmp-") }.sorted()
}

/// Starts a built tool with its output discarded; the caller waits or signals it.
func startTool(_ tool: String, _ arguments: [String]) throws -> Process {
  let process = Process()
  process.executableURL = productsDirectory.appendingPathComponent(tool)
  process.environment = toolEnvironment
  process.arguments = arguments
  process.standardOutput = FileHandle.nullDevice
  process.standardError = FileHandle.nullDevice
  process.standardInput = FileHandle.nullDevice
  try process.run()
  return process
}

/// Runs a built tool with `posix_spawn` and `wait4`, returning its exit status and peak
/// resident set size in KiB (`ru_maxrss` of that one child, unlike `RUSAGE_CHILDREN`).
func peakResidentKilobytes(_ tool: String, _ arguments: [String]) throws -> (status: Int32, kilobytes: Int) {
  let executable = productsDirectory.appendingPathComponent(tool).path
  let argv = ([executable] + arguments).map { strdup($0) } + [nil]
  defer { for pointer in argv { free(pointer) } }
  var actions = posix_spawn_file_actions_t()
  posix_spawn_file_actions_init(&actions)
  defer { posix_spawn_file_actions_destroy(&actions) }
  posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
  posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0)
  var pid: pid_t = 0
  let spawned = posix_spawn(&pid, executable, &actions, nil, argv, environ)
  guard spawned == 0 else { throw POSIXError(POSIXErrorCode(rawValue: spawned) ?? .EIO) }
  var status: Int32 = 0
  var usage = rusage()
  while wait4(pid, &status, 0, &usage) < 0 {
    guard errno == EINTR else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
  }
  let exitStatus = (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
  return (exitStatus, usage.ru_maxrss)
}
