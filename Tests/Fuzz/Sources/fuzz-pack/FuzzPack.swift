import FuzzSupport
import QCompute
import QFormats

/// A qpack from raw bytes: the safetensors container, the pack descriptions in its metadata,
/// the companions they name, and every tensor dequantized.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
  let bytes = [UInt8](UnsafeBufferPointer(start: data, count: size))
  guard let file = try? SafetensorsFile(bytes: bytes, location: "fuzz.qpack.safetensors"),
    PackedCheckpoint.isPack(file),
    let pack = try? PackedCheckpoint(wrapping: file)
  else { return 0 }
  readEveryTensor(pack)
  return 0
}
