/// What a decoder family's block computes beyond Llama's, read by the inference forward, the
/// calibration hooks and the training graph alike, so each feature is written once per pass.
///
/// A family's file maps its `config.json` to one of these (`DecoderFamily.architecture`); the
/// default value is Llama's block.
public struct DecoderArchitecture: Sendable, Equatable {
  /// The gate's activation in the gated MLP `act(gate) * up`.
  public enum Activation: Sendable, Equatable {
    /// `x σ(x)` (Llama, Qwen, Mistral).
    case silu
    /// The tanh approximation of GELU, `gelu_pytorch_tanh` (Gemma).
    case geluTanh
  }

  /// Rotary settings of one layer.
  public struct Rope: Sendable, Equatable {
    public var theta: Double
    public var scaling: RopeScaling

    public init(theta: Double, scaling: RopeScaling = .none) {
      self.theta = theta
      self.scaling = scaling
    }
  }

  /// How one layer attends.
  public struct LayerAttention: Sendable, Equatable {
    /// Keys a query sees, itself included; `nil` for every earlier position.
    public var slidingWindow: Int?
    /// `nil` for a layer without positions (SmolLM3's NoPE layers).
    public var rope: Rope?

    public init(slidingWindow: Int? = nil, rope: Rope?) {
      self.slidingWindow = slidingWindow
      self.rope = rope
    }
  }

  /// Norms multiply by `offset + w`: 0 for Llama, 1 for Gemma's `(1 + w)`.
  public var normWeightOffset: Float = 0
  public var activation: Activation = .silu
  /// RMSNorm of each query and key head before rotation (`self_attn.q_norm`, `self_attn.k_norm`).
  public var queryKeyNorms = false
  /// Gemma 2/3's four norms per block: the attention and MLP outputs are normed before their
  /// residual adds (`post_attention_layernorm`, `post_feedforward_layernorm`), and the MLP input
  /// by `pre_feedforward_layernorm`.
  public var sandwichNorms = false
  /// Multiplies the embedding rows (Gemma's sqrt(hidden), rounded to the checkpoint's dtype).
  public var embeddingScale: Float? = nil
  /// Multiplies `q kᵀ`; `nil` for `1 / sqrt(headDimension)`.
  public var attentionScale: Float? = nil
  /// Scores become `cap tanh(s / cap)` before the mask (Gemma 2).
  public var attentionSoftcap: Float? = nil
  /// Logits become `cap tanh(z / cap)` (Gemma 2).
  public var finalSoftcap: Float? = nil
  /// q, k and v stored as one `self_attn.qkv_proj` and gate and up as one `mlp.gate_up_proj`
  /// (Phi-3); split into the engine's separate weights when loaded.
  public var fusedProjections = false
  /// Per layer; empty means every layer attends fully with the configuration's rope.
  public var layers: [LayerAttention] = []

  public init() {}

  /// Where a norm weight of block `block` lives in a checkpoint, or `nil` when this
  /// architecture has no such norm.
  public func normName(_ norm: BlockNorm, block: Int) -> String? {
    normSuffix(norm).map { "model.layers.\(block)." + $0 }
  }

  /// A norm weight's name after its block's prefix (`model.layers.N.`), or `nil` when this
  /// architecture has no such norm.
  public func normSuffix(_ norm: BlockNorm) -> String? {
    switch norm {
    case .attentionInput: "input_layernorm.weight"
    case .attentionOutput: sandwichNorms ? "post_attention_layernorm.weight" : nil
    case .mlpInput: mlpInputNormSuffix
    case .mlpOutput: sandwichNorms ? "post_feedforward_layernorm.weight" : nil
    case .query: queryKeyNorms ? "self_attn.q_norm.weight" : nil
    case .key: queryKeyNorms ? "self_attn.k_norm.weight" : nil
    }
  }
}

extension DecoderArchitecture {
  /// The norm every block has before its MLP.
  public func mlpInputNormName(block: Int) -> String { "model.layers.\(block)." + mlpInputNormSuffix }

  var mlpInputNormSuffix: String { sandwichNorms ? "pre_feedforward_layernorm.weight" : "post_attention_layernorm.weight" }
}

/// The norms a decoder block may have, by what they normalise.
public enum BlockNorm: Sendable, CaseIterable, Hashable {
  case attentionInput
  case attentionOutput
  case mlpInput
  case mlpOutput
  /// Per query head, `headDimension` wide.
  case query
  /// Per key head, `headDimension` wide.
  case key
}

extension DecoderConfiguration {
  /// How layer `index` attends: its own entry, or full attention with the configuration's rope.
  public func attention(layer index: Int) -> DecoderArchitecture.LayerAttention {
    if architecture.layers.indices.contains(index) { return architecture.layers[index] }
    return .init(rope: .init(theta: ropeTheta, scaling: ropeScaling))
  }

  /// The scale of `q kᵀ`.
  public var attentionScale: Float { architecture.attentionScale ?? 1 / Float(headDimension).squareRoot() }

  /// The width of norm `norm`'s weight.
  func width(of norm: BlockNorm) -> Int {
    norm == .query || norm == .key ? headDimension : hiddenSize
  }
}
