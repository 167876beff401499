import Foundation
import QFormats

/// The decoder a GGUF file holds, described as a Hugging Face `config.json` would describe it,
/// so the engine runs a GGUF exactly as it runs the checkpoint it was converted from.
///
/// llama.cpp keeps the shape in metadata under the architecture's name (`llama.block_count`,
/// `qwen2.attention.head_count_kv`, ...); this reads those keys and writes the config the
/// engine already understands, rather than teaching the engine a second vocabulary.
public struct GGUFDecoderConfig: Sendable {
  /// The GGUF architectures the engine runs and what each is in Hugging Face terms.
  public enum Architecture: String, Sendable, CaseIterable {
    case llama
    case qwen2

    /// Whether llama.cpp's converter interleaved the rotary halves of q/k rows
    /// (`convert_hf_to_gguf.py`'s `LlamaModel.permute`); Qwen2 is written as is.
    public var permutesQueryKey: Bool { self == .llama }
  }

  public let architecture: Architecture
  /// The config as `config.json` text, which `ModelConfig(data:location:)` reads.
  public let configData: Data
  public let headCount: Int
  public let keyValueHeadCount: Int

  /// Reads the architecture and shape from `file`'s metadata.
  /// - Throws: `EngineError.unsupportedGGUF` for an architecture or setting the engine does
  ///   not run, `.invalidGGUFMetadata` for an absent or unusable key.
  public init(file: GGUFFile) throws {
    let location = file.location
    let name = file.values["general.architecture"]?.stringValue
    guard let name else {
      throw EngineError.invalidGGUFMetadata(
        location: location, key: "general.architecture", reason: "is missing; it names the model's architecture")
    }
    guard let architecture = Architecture(rawValue: name) else {
      let supported = Architecture.allCases.map { "'\($0.rawValue)'" }.joined(separator: " and ")
      throw EngineError.unsupportedGGUF(
        location: location, reason: "GGUF architecture '\(name)' is not supported (the engine runs \(supported))")
    }
    self.architecture = architecture
    func integer(_ suffix: String) throws -> Int? {
      let key = "\(name).\(suffix)"
      guard let value = file.values[key] else { return nil }
      guard let number = value.intValue, number > 0 else {
        throw EngineError.invalidGGUFMetadata(
          location: location, key: key, reason: "is \(value.type.name) \(value.rendered), expected a positive integer")
      }
      return number
    }
    func required(_ suffix: String) throws -> Int {
      guard let number = try integer(suffix) else {
        throw EngineError.invalidGGUFMetadata(location: location, key: "\(name).\(suffix)", reason: "is missing")
      }
      return number
    }
    func real(_ suffix: String) throws -> Double? {
      let key = "\(name).\(suffix)"
      guard let value = file.values[key] else { return nil }
      switch value {
      case .float32(let v) where v.isFinite && v > 0: return Double(v)
      case .float64(let v) where v.isFinite && v > 0: return v
      default:
        throw EngineError.invalidGGUFMetadata(
          location: location, key: key, reason: "is \(value.type.name) \(value.rendered), expected a positive number")
      }
    }

    let hidden = try required("embedding_length")
    let heads = try required("attention.head_count")
    let keyValueHeads = try integer("attention.head_count_kv") ?? heads
    let headDimension = try integer("attention.key_length") ?? hidden / heads
    if let rotary = try integer("rope.dimension_count"), rotary != headDimension {
      throw EngineError.unsupportedGGUF(
        location: location,
        reason: "rotary embedding over \(rotary) of \(headDimension) head dimensions is not supported ('\(name).rope.dimension_count')")
    }
    if file.tensorInfo(named: "rope_freqs.weight") != nil {
      throw EngineError.unsupportedGGUF(
        location: location, reason: "per-frequency rope factors (tensor 'rope_freqs.weight') are not supported")
    }
    // The embedding's rows are what the model runs on; the token list may be shorter.
    var vocabulary = file.tensorInfo(named: "token_embd.weight")?.shape.first
    if vocabulary == nil { vocabulary = try integer("vocab_size") }
    if vocabulary == nil, case .array(_, let tokens) = file.values["tokenizer.ggml.tokens"] {
      vocabulary = tokens.count
    }
    guard let vocabulary else {
      throw EngineError.invalidGGUFMetadata(
        location: location, key: "\(name).vocab_size", reason: "is missing, and so are 'token_embd.weight' and 'tokenizer.ggml.tokens'")
    }

    var config: [String: Any] = [
      "model_type": architecture.rawValue,
      "vocab_size": vocabulary,
      "hidden_size": hidden,
      "num_hidden_layers": try required("block_count"),
      "num_attention_heads": heads,
      "num_key_value_heads": keyValueHeads,
      "head_dim": headDimension,
      "intermediate_size": try required("feed_forward_length"),
      "rms_norm_eps": try real("attention.layer_norm_rms_epsilon") ?? 1e-6,
      "rope_theta": try real("rope.freq_base") ?? 10_000,
      "tie_word_embeddings": file.tensorInfo(named: "output.weight") == nil,
    ]
    if let context = try integer("context_length") { config["max_position_embeddings"] = context }
    if let kind = file.values["\(name).rope.scaling.type"]?.stringValue, kind != "none" {
      guard kind == "linear", let factor = try real("rope.scaling.factor") else {
        throw EngineError.unsupportedGGUF(
          location: location, reason: "rope scaling '\(kind)' is not supported ('\(name).rope.scaling.type'; linear is)")
      }
      config["rope_scaling"] = ["type": "linear", "factor": factor]
    }
    configData = try JSONSerialization.data(withJSONObject: config, options: [.sortedKeys])
    headCount = heads
    keyValueHeadCount = keyValueHeads
  }
}
