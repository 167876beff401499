#if canImport(Glibc)
  import Glibc
#endif
import Foundation
import QFormats

/// A private folder for targets whose readers need paths, made once per process.
///
/// In memory (`/dev/shm`) where there is one: on ext4 a file truncated and rewritten is
/// flushed on close, which makes a disk-backed scratch file a hundred times slower.
public let fuzzScratchFolder: String = {
  let base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : NSTemporaryDirectory()
  let path = base + "/qtoolchain-fuzz-\(getpid())"
  guard mkdir(path, 0o700) == 0 || errno == EEXIST else { fatalError("mkdir \(path) failed: errno \(errno)") }
  return path
}()

/// Writes `size` bytes at `data` to `name` inside the scratch folder and returns its path.
public func writeScratchFile(_ name: String, _ data: UnsafePointer<UInt8>, _ size: Int) -> String {
  let path = fuzzScratchFolder + "/" + name
  let descriptor = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
  guard descriptor >= 0 else { fatalError("open \(path) failed: errno \(errno)") }
  defer { close(descriptor) }
  var written = 0
  while written < size {
    let count = write(descriptor, data + written, size - written)
    guard count > 0 else { fatalError("write \(path) failed: errno \(errno)") }
    written += count
  }
  return path
}

/// Reads every tensor of `source` as floats, as the tools do, and drops the values.
///
/// Tensors too large for the fuzzer's memory limit are skipped: a valid header may describe
/// data up to the file's size, and that size is bounded by `-max_len`.
public func readEveryTensor(_ source: any TensorSource) {
  for info in source.tensors where info.elementCount <= 1 << 22 {
    _ = try? source.floats(of: info.name)
  }
}
