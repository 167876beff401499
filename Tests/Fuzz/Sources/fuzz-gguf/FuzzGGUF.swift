import FuzzSupport
import QFormats

/// A GGUF file from raw bytes (the reader maps a path): header, metadata, every tensor.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
  let path = writeScratchFile("fuzz.gguf", data, size)
  guard let file = try? GGUFFile(path: path) else { return 0 }
  readEveryTensor(file)
  for info in file.quantizedTensors {
    _ = try? file.withRawBytes(of: info.name) { $0.reduce(0 as UInt8, &+) }
  }
  return 0
}
