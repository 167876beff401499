import FuzzSupport
import QFormats

/// An HDF5 file from raw bytes through our wrapper: catalog, attributes, every dataset.
///
/// Opening goes through the worker process that reads the file's structure first; it gets 300 ms
/// to answer (the seeds take a few milliseconds), and a file a reused worker hung on is tried once
/// more in a fresh one, so a file on which libhdf5 loops is refused within 600 ms of
/// `run-fuzz.sh`'s one second per input, in time even on a loaded machine.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
  let path = writeScratchFile("fuzz.h5", data, size)
  guard let file = try? HDF5File(path: path, probeTimeout: .milliseconds(300)) else { return 0 }
  readEveryTensor(file)
  return 0
}
