import FuzzSupport
import QFormats

/// An HDF5 file from raw bytes through our wrapper: catalog, attributes, every dataset.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
  let path = writeScratchFile("fuzz.h5", data, size)
  guard let file = try? HDF5File(path: path) else { return 0 }
  readEveryTensor(file)
  return 0
}
