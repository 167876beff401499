import FuzzSupport
import QFormats

/// An HDF5 file from raw bytes through our wrapper: catalog, attributes, every dataset.
///
/// Opening goes through the child process that reads the file's structure first; it gets 300 ms
/// of `run-fuzz.sh`'s one second per input (the seeds take 20 to 40 ms), so that a file on which
/// libhdf5 loops is refused in time even on a loaded machine.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
  let path = writeScratchFile("fuzz.h5", data, size)
  guard let file = try? HDF5File(path: path, probeTimeout: .milliseconds(300)) else { return 0 }
  readEveryTensor(file)
  return 0
}
