import QCompute

/// The settings of SPEED-Q's stage 3 (quantization-aware training with the FP model as teacher).
public struct SpeedQConfiguration: Sendable, Equatable {
  /// The bilevel grid of every decoder linear not named in `linearGrids` or `keptLinears`:
  /// `.w2g16g16` or `.w4g32g128`.
  public var grid: BilevelQuantizer.Configuration
  /// Grids that replace `grid` for some linears (unprefixed weight names), as a bit allocation
  /// by sensitivity gives them: each linear trains against the grid its pack entry will hold.
  public var linearGrids: [String: BilevelQuantizer.Configuration]
  /// Linears (unprefixed weight names) written in full precision: neither quantized nor trained.
  public var keptLinears: Set<String>
  /// Peak learning rate of the cosine schedule. The reference trains 10k steps at 8e-6; a short
  /// CPU run needs a larger step to move weights across 2-bit grid cells.
  public var learningRate: Double
  /// Optimizer steps in the whole run (the schedule's length).
  public var steps: Int
  /// Linear warm-up as a fraction of `steps` (3 % in the reference).
  public var warmupFraction: Double
  public var weightDecay: Double
  /// Windows per step.
  public var batchSize: Int
  /// Label smoothing of the cross-entropy term (0.1 in the reference).
  public var labelSmoothing: Double
  /// λ on the CAKLD term (token-summed, batch-averaged, as the reference).
  public var distillationWeight: Double
  /// ζ on the label-smoothed cross-entropy term (token mean).
  public var crossEntropyWeight: Double
  /// Global gradient norm clip (Hugging Face Trainer's default 1.0); `nil` turns it off.
  public var maxGradientNorm: Double?
  /// Skip the clip search for q/k projections, as the reference does.
  public var clipSkipsQueryKey: Bool
  /// Windows CAKLD's γ is averaged over before training (the first ones).
  public var confidenceWindows: Int
  /// Where the run's latent weights and optimizer state are saved for `--resume`; `nil` keeps
  /// nothing. An existing file there is resumed from.
  public var checkpointPath: String?
  /// Save every this many steps (and at the end of a run) when `checkpointPath` is set.
  public var checkpointInterval: Int
  /// Stop this run after this global step (for splitting a run over sessions); `nil` runs to `steps`.
  public var stopAfterStep: Int?
  /// How the token embedding (and an untied lm_head) is held, frozen, while the linears train.
  public var embedding: EmbeddingGrid
  /// Where the latent linears start: the clip search's clamped weights (the reference), or
  /// GPTQ's codes on the same grid, which start training from a far lower loss.
  public var initialisation: Initialisation
  /// Train the RMSNorm weights and the linear biases in full precision beside the latent
  /// linears, as the reference does (speedq.md 2: "norms and biases"); they take no weight
  /// decay, as Hugging Face's Trainer groups them. `false` keeps them as stored.
  public var trainsNormsAndBiases: Bool

  /// How the latent linears are initialised before training.
  public enum Initialisation: String, Sendable, Equatable, CaseIterable {
    case clip
    case gptq
  }

  /// The frozen grid of the embedding and lm_head. The student trains against exactly the values
  /// the pack will hold, so the linears learn to make up for the embedding's rounding.
  public enum EmbeddingGrid: Sendable, Equatable, CustomStringConvertible {
    /// SPEED-Q's policy: 4-bit symmetric, group 32.
    case speedQ
    /// Full precision, written as stored.
    case kept
    /// Any other pack grid, e.g. 8 bits for a small model whose tied embedding is a fifth of it.
    case packed(PackSpec)
    /// A bilevel grid on which the embedding (and the head it is tied to) trains with the
    /// linears, looked up and multiplied on its grid: at 4 bits a tied embedding that is a fifth
    /// of a small model costs what rounding it once would not.
    case trained(BilevelQuantizer.Configuration)

    public var description: String {
      switch self {
      case .speedQ: "speedq"
      case .kept: "kept"
      case .packed(let spec): "\(spec)"
      case .trained(let grid): "trained \(grid)"
      }
    }
  }

  public init(
    grid: BilevelQuantizer.Configuration = .w2g16g16, learningRate: Double = 5e-5, steps: Int = 100,
    warmupFraction: Double = 0.03, weightDecay: Double = 0.01, batchSize: Int = 1,
    labelSmoothing: Double = 0.1, distillationWeight: Double = 1, crossEntropyWeight: Double = 1,
    maxGradientNorm: Double? = 1, clipSkipsQueryKey: Bool = true, confidenceWindows: Int = 100,
    checkpointPath: String? = nil,
    checkpointInterval: Int = 50, stopAfterStep: Int? = nil, embedding: EmbeddingGrid = .speedQ,
    linearGrids: [String: BilevelQuantizer.Configuration] = [:], keptLinears: Set<String> = [],
    trainsNormsAndBiases: Bool = true, initialisation: Initialisation = .clip
  ) {
    self.grid = grid
    self.linearGrids = linearGrids
    self.keptLinears = keptLinears
    self.learningRate = learningRate
    self.steps = steps
    self.warmupFraction = warmupFraction
    self.weightDecay = weightDecay
    self.batchSize = batchSize
    self.labelSmoothing = labelSmoothing
    self.distillationWeight = distillationWeight
    self.crossEntropyWeight = crossEntropyWeight
    self.maxGradientNorm = maxGradientNorm
    self.clipSkipsQueryKey = clipSkipsQueryKey
    self.confidenceWindows = confidenceWindows
    self.checkpointPath = checkpointPath
    self.checkpointInterval = checkpointInterval
    self.stopAfterStep = stopAfterStep
    self.embedding = embedding
    self.trainsNormsAndBiases = trainsNormsAndBiases
    self.initialisation = initialisation
  }

  /// What a resumed run must share with the run that saved the checkpoint.
  var fingerprint: String {
    "\(grid) lr=\(learningRate) steps=\(steps) warmup=\(warmupFraction) wd=\(weightDecay) "
      + "batch=\(batchSize) ls=\(labelSmoothing) kd=\(distillationWeight) ce=\(crossEntropyWeight) "
      + "clip=\(maxGradientNorm.map { "\($0)" } ?? "off") qk=\(clipSkipsQueryKey)"
      + (embedding == .speedQ ? "" : " embedding=\(embedding)")
      + (linearGrids.isEmpty ? "" : " grids=" + overrides)
      + (keptLinears.isEmpty ? "" : " kept=" + keptLinears.sorted().joined(separator: ","))
      + (trainsNormsAndBiases ? " norms=trained" : "")
      + (initialisation == .clip ? "" : " init=\(initialisation.rawValue)")
  }

  private var overrides: String {
    linearGrids.sorted { $0.key < $1.key }.map { "\($0.key):\($0.value)" }.joined(separator: ",")
  }

  /// The grid `name` trains on, or `nil` for a kept linear.
  public func grid(for name: String) -> BilevelQuantizer.Configuration? {
    keptLinears.contains(name) ? nil : linearGrids[name] ?? grid
  }
}

/// One optimizer step as reported to the progress callback.
public struct SpeedQProgress: Sendable {
  /// Steps done so far in the whole run (1-based after the first update).
  public var step: Int
  public var totalSteps: Int
  /// `λ CAKLD + ζ CE` of the batch before the update.
  public var loss: Double
  public var distillation: Double
  public var crossEntropy: Double
  public var learningRate: Double
}
