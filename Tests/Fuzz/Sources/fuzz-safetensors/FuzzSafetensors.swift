import FuzzSupport
import QFormats

/// A safetensors file from raw bytes: header, metadata, then every tensor's data.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
  let bytes = [UInt8](UnsafeBufferPointer(start: data, count: size))
  guard let file = try? SafetensorsFile(bytes: bytes, location: "fuzz.safetensors") else { return 0 }
  readEveryTensor(file)
  return 0
}
