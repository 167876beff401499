import QFormats

/// The shape of a ViT-style vision tower, read from its Hugging Face config.
public struct VisionConfig: Sendable, Equatable {
  public enum Kind: String, Sendable {
    /// `Dinov2Model`: class token, layer scale, final layer norm, interpolated positions.
    case dinov2
    /// `CLIPVisionModel`: class token, pre-layer norm, quick GELU.
    case clip
    /// `SiglipVisionModel`: no class token, tanh GELU, post-layer norm.
    case siglip
    /// `InternVLVisionModel` (InternViT): class token, layer scale, exact GELU, no final norm
    /// when it pools by mean (as InternVL's towers do).
    case internVL
  }

  public enum Activation: String, Sendable {
    case gelu, quickGELU, tanhGELU
  }

  public var kind: Kind
  public var hiddenSize: Int
  public var layerCount: Int
  public var headCount: Int
  public var intermediateSize: Int
  public var patchSize: Int
  public var imageSize: Int
  public var channels: Int
  public var layerNormEpsilon: Float
  public var activation: Activation

  /// Reads a vision config (the `vision_config` of a multimodal model, or a standalone one).
  public init(_ config: ModelConfig) throws {
    let location = config.location
    // InternVL writes sizes as [height, width]; only square ones are read.
    func int(_ key: String) -> Int? {
      if let value = config.raw[key]?.intValue { return value }
      guard let pair = config.raw[key]?.arrayValue, pair.count == 2, let first = pair[0].intValue,
        pair[1].intValue == first
      else { return nil }
      return first
    }
    func require(_ value: Int?, _ key: String) throws -> Int {
      guard let value, value > 0 else { throw EngineError.missingConfig(location: location, key: key) }
      return value
    }
    let type = config.modelType ?? ""
    switch type {
    case "dinov2": kind = .dinov2
    case "clip_vision_model", "clip": kind = .clip
    // Idefics3's and SmolVLM's towers are SigLIP's under their own names.
    case "siglip_vision_model", "siglip", "idefics3_vision", "smolvlm_vision": kind = .siglip
    case "internvl_vision": kind = .internVL
    default: throw EngineError.unsupportedArchitecture(location: location, family: type)
    }
    hiddenSize = try require(config.hiddenSize, "hidden_size")
    layerCount = try require(config.numHiddenLayers, "num_hidden_layers")
    headCount = try require(config.numAttentionHeads, "num_attention_heads")
    guard hiddenSize % headCount == 0 else {
      throw EngineError.missingConfig(location: location, key: "num_attention_heads dividing hidden_size")
    }
    patchSize = try require(int("patch_size"), "patch_size")
    imageSize = try require(int("image_size"), "image_size")
    channels = int("num_channels") ?? 3
    let act = config.raw["hidden_act"]?.stringValue
    switch kind {
    case .dinov2:
      if config.raw["use_swiglu_ffn"]?.boolValue == true {
        throw EngineError.unsupportedArchitecture(location: location, family: "dinov2 with SwiGLU")
      }
      let ratio = config.raw["mlp_ratio"]?.doubleValue ?? 4
      intermediateSize = Int(Double(hiddenSize) * ratio)
      layerNormEpsilon = Float(config.raw["layer_norm_eps"]?.doubleValue ?? 1e-6)
      activation = try Self.activation(act ?? "gelu", location: location)
    case .clip:
      intermediateSize = try require(config.intermediateSize, "intermediate_size")
      layerNormEpsilon = Float(config.raw["layer_norm_eps"]?.doubleValue ?? 1e-5)
      activation = try Self.activation(act ?? "quick_gelu", location: location)
    case .siglip:
      intermediateSize = try require(config.intermediateSize, "intermediate_size")
      layerNormEpsilon = Float(config.raw["layer_norm_eps"]?.doubleValue ?? 1e-6)
      activation = try Self.activation(act ?? "gelu_pytorch_tanh", location: location)
    case .internVL:
      // The settings of InternViT-6B and of masked pre-training are not implemented.
      let raw = config.raw
      for (key, value, supported) in [
        ("norm_type", raw["norm_type"]?.stringValue ?? "layer_norm", "layer_norm"),
        ("use_qk_norm", "\(raw["use_qk_norm"]?.boolValue ?? false)", "false"),
        ("use_absolute_position_embeddings", "\(raw["use_absolute_position_embeddings"]?.boolValue ?? true)", "true"),
      ] where value != supported {
        throw EngineError.unsupportedArchitecture(location: location, family: "internvl_vision with \(key) \(value)")
      }
      intermediateSize = try require(config.intermediateSize, "intermediate_size")
      layerNormEpsilon = Float(config.raw["layer_norm_eps"]?.doubleValue ?? 1e-6)
      activation = try Self.activation(act ?? "gelu", location: location)
    }
  }

  static func activation(_ name: String, location: String) throws -> Activation {
    switch name {
    case "gelu": return .gelu
    case "quick_gelu": return .quickGELU
    case "gelu_pytorch_tanh", "gelu_new", "gelu_fast": return .tanhGELU
    default: throw EngineError.unsupportedArchitecture(location: location, family: "activation \(name)")
    }
  }

  var headDim: Int { hiddenSize / headCount }
  var hasClassToken: Bool { kind != .siglip }
}
