import Foundation
import FuzzSupport
import QFormats

/// `adapter_config.json` from raw bytes through `PEFTAdapterConfig` (compiled here from
/// `Sources/QToolSupport/LoRA/`, which is not a library product), then written back as
/// `PEFTAdapter.write` does.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
  guard let config = try? PEFTAdapterConfig(data: Data(bytes: data, count: size), path: "adapter_config.json")
  else { return 0 }
  _ = config.useRSLoRA ? config.alpha / Double(config.rank).squareRoot() : config.alpha / Double(config.rank)
  let encoder = JSONEncoder()
  encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
  _ = try? encoder.encode(JSONValue.object(config.object))
  return 0
}
