import Foundation
import FuzzSupport
import QFormats

/// A `config.json` from raw bytes, then architecture recognition over it with no tensors and
/// with tensors named after the config's own keys.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
  guard let config = try? ModelConfig(data: Data(bytes: data, count: size), location: "config.json") else {
    return 0
  }
  let summary = ArchitectureSummary.recognise(config: config, tensors: [])
  _ = String(describing: summary)
  let tensors = [
    TensorInfo(name: "model.embed_tokens.weight", dtype: .f16, shape: [8, 4]),
    TensorInfo(name: "model.layers.0.self_attn.q_proj.weight", dtype: .f16, shape: [4, 4]),
    TensorInfo(name: "lm_head.weight", dtype: .f16, shape: [8, 4]),
  ]
  let withTensors = ArchitectureSummary.recognise(config: config, tensors: tensors)
  for info in tensors {
    _ = withTensors.component(of: info.name)
    _ = withTensors.role(of: info.name)
  }
  return 0
}
