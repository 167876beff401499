import Foundation
import QFormats

/// The parts of `adapter_config.json` that decide whether and how an adapter can be moved.
///
/// Kept apart from `PEFTAdapter` and free of the numeric modules, so that the fuzz target
/// can compile this very file and feed it arbitrary bytes.
struct PEFTAdapterConfig: Sendable {
  /// The config as read, so that fields this tool does not know survive the move.
  var object: [String: JSONValue]
  var rank: Int
  var alpha: Double
  var useRSLoRA: Bool

  /// Parses the config's bytes; `path` names the file in errors.
  /// - Throws: `LoraRebaseError.adapter` for text that is not a JSON object, a non-LoRA
  ///   `peft_type`, a missing or non-positive `r`, rank or alpha patterns, or DoRA.
  init(data: Data, path: String) throws {
    guard case .object(let object)? = try? JSONDecoder().decode(JSONValue.self, from: data) else {
      throw LoraRebaseError.adapter(path: path, detail: "The config is not a JSON object")
    }
    if let type = object["peft_type"]?.stringValue, type != "LORA" {
      throw LoraRebaseError.adapter(
        path: path, detail: "peft_type is '\(type)'; only 'LORA' adapters can be moved")
    }
    guard let rank = object["r"]?.intValue, rank > 0 else {
      throw LoraRebaseError.adapter(path: path, detail: "Missing or invalid 'r'")
    }
    for key in ["rank_pattern", "alpha_pattern"] {
      if case .object(let pattern) = object[key], !pattern.isEmpty {
        throw LoraRebaseError.adapter(
          path: path, detail: "'\(key)' gives modules their own rank or alpha; not supported")
      }
    }
    if object["use_dora"]?.boolValue == true {
      throw LoraRebaseError.adapter(path: path, detail: "DoRA adapters are not supported")
    }
    self.object = object
    self.rank = rank
    self.alpha = object["lora_alpha"]?.doubleValue ?? Double(rank)
    self.useRSLoRA = object["use_rslora"]?.boolValue ?? false
  }
}
