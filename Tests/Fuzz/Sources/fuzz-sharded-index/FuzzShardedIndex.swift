import FuzzSupport
import QFormats

/// Two valid one-tensor shards, written once; the fuzzer supplies the index that names them.
let shardsWritten: Bool = {
  for (file, tensor) in [("model-00001-of-00002.safetensors", "a"), ("model-00002-of-00002.safetensors", "b")] {
    var header = Array(#"{"\#(tensor)":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#.utf8)
    while header.count % 8 != 0 { header.append(0x20) }
    var bytes = withUnsafeBytes(of: UInt64(header.count).littleEndian) { Array($0) }
    bytes += header + [0, 0, 0x80, 0x3f]
    bytes.withUnsafeBufferPointer { buffer in
      _ = buffer.baseAddress.map { writeScratchFile(file, $0, buffer.count) }
    }
  }
  return true
}()

/// `model.safetensors.index.json` from raw bytes, opened with its shards.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
  guard shardsWritten else { return 0 }
  let path = writeScratchFile("model.safetensors.index.json", data, size)
  guard let checkpoint = try? ShardedCheckpoint(indexPath: path) else { return 0 }
  readEveryTensor(checkpoint)
  return 0
}
