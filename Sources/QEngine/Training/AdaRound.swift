import QCompute

/// Block-wise adaptive rounding (AdaRound with BRECQ's block objective): the rounding of every
/// linear weight of a block is learned together so that the block's output, not each layer's,
/// reproduces the full-precision block's.
///
/// The loss is BRECQ's: the squared output error summed over the width and averaged over rows,
/// plus `λ Σ (1 - |2h(V) - 1|^β)` after a warm-up, β decaying linearly from `betaStart` to
/// `betaEnd`; Adam on `V`; the codes at the end round up where `h(V) >= 0.5`.
public enum AdaRound {
  public struct Options: Sendable, Hashable {
    public var iterations: Int
    /// Adam's step on `V`. BRECQ takes 20k steps at 1e-3; the default keeps that total movement
    /// (20) for the default 200 steps.
    public var learningRate: Double
    /// λ, the weight of the rounding regulariser.
    public var regularisation: Double
    public var betaStart: Float
    public var betaEnd: Float
    /// The fraction of iterations before the regulariser starts.
    public var warmup: Double
    /// Batches stacked into each step.
    public var batchesPerStep: Int
    /// Seeds the order batches are visited in.
    public var seed: UInt64

    public init(
      iterations: Int = 200, learningRate: Double = 0.1, regularisation: Double = 0.01, betaStart: Float = 20,
      betaEnd: Float = 2, warmup: Double = 0.2, batchesPerStep: Int = 1, seed: UInt64 = 0
    ) {
      self.iterations = iterations
      self.learningRate = learningRate
      self.regularisation = regularisation
      self.betaStart = betaStart
      self.betaEnd = betaEnd
      self.warmup = warmup
      self.batchesPerStep = batchesPerStep
      self.seed = seed
    }

    /// β at `iteration`, and whether the regulariser is on: off during the warm-up, then
    /// `betaEnd + (betaStart - betaEnd)(1 - progress)` (BRECQ's `LinearTempDecay`).
    public func beta(at iteration: Int) -> (beta: Float, regularised: Bool) {
      let start = Int(Double(iterations) * warmup)
      guard iteration >= start else { return (betaStart, false) }
      let progress = Float(iteration - start) / Float(max(1, iterations - start))
      return (betaEnd + (betaStart - betaEnd) * max(0, 1 - progress), true)
    }
  }

  /// Where a run is, for a progress line.
  public struct Progress: Sendable {
    public var iteration: Int
    public var iterations: Int
    /// The batch's `mean((output - target)²)` with the soft weights.
    public var reconstruction: Float
    /// `Σ (1 - |2h(V) - 1|^β)` over all weights (0 during the warm-up).
    public var regulariser: Double
    public var beta: Float
  }

  /// Learns the rounding of every weight in `grids` (by name, each on its fixed grid) so that
  /// `block` reproduces the batches' targets; returns the grids with the learned codes.
  /// - Throws: `TrainingError.invalidInput` for no batches, a grid the block has no weight for
  ///   or options out of range; what the block throws for mismatched batches.
  public static func optimize(
    block: some ReconstructableBlock, batches: [BlockBatch], grids: [String: QuantizedMatrix],
    options: Options = Options(), progress: ((Progress) -> Void)? = nil
  ) throws -> [String: QuantizedMatrix] {
    try optimizedLayers(block: block, batches: batches, grids: grids, options: options, progress: progress)
      .mapValues { $0.quantized() }
  }

  /// `optimize`'s rounding variables at the end, before hard rounding.
  static func optimizedLayers(
    block: some ReconstructableBlock, batches: [BlockBatch], grids: [String: QuantizedMatrix],
    options: Options, progress: ((Progress) -> Void)?
  ) throws -> [String: AdaRoundLayer] {
    var layers = try startingLayers(block: block, grids: grids)
    guard !batches.isEmpty else { throw TrainingError.invalidInput(operation: "AdaRound", reason: "no batches") }
    guard options.iterations >= 0, options.batchesPerStep >= 1, options.learningRate > 0 else {
      throw TrainingError.invalidInput(
        operation: "AdaRound",
        reason: "iterations \(options.iterations), batches per step \(options.batchesPerStep) and learning rate \(options.learningRate) must be positive")
    }
    let names = layers.keys.sorted()
    var optimizer = AdamW(weightDecay: 0)
    var parameters = layers.mapValues(\.logits)
    var generator = SeededGenerator(seed: options.seed)
    var order: [Int] = []
    let width = Float(block.width)
    for iteration in 0..<options.iterations {
      var stacked = BlockBatch(input: [], target: [], lengths: [])
      for _ in 0..<options.batchesPerStep {
        if order.isEmpty { order = batches.indices.shuffled(using: &generator) }
        let batch = batches[order.removeLast()]
        stacked.input += batch.input
        stacked.target += batch.target
        stacked.lengths += batch.lengths
      }
      var soft: [String: [Float]] = [:]
      for name in names { soft[name] = layers[name]?.softWeights() }
      let (loss, weightGradients) = try block.reconstruction(stacked, replacing: soft)
      let (beta, regularised) = options.beta(at: iteration)
      var gradients: [String: [Float]] = [:]
      var regulariser = 0.0
      for name in names {
        guard let layer = layers[name], let weightGradient = weightGradients[name] else { continue }
        // BRECQ sums the squared error over the width: scale the block's mean by it.
        let (gradient, value) = layer.combinedGradient(
          weightGradient: weightGradient, scale: width, regularisation: Float(options.regularisation),
          beta: regularised ? beta : nil)
        regulariser += value
        gradients[name] = gradient
      }
      try optimizer.update(&parameters, gradients: gradients, learningRate: options.learningRate)
      for name in names { layers[name]?.logits = parameters[name] ?? [] }
      progress?(
        Progress(
          iteration: iteration + 1, iterations: options.iterations, reconstruction: loss, regulariser: regulariser,
          beta: beta))
    }
    return layers
  }

  /// An `AdaRoundLayer` per grid, started from the block's own weights.
  static func startingLayers(
    block: some ReconstructableBlock, grids: [String: QuantizedMatrix]
  ) throws -> [String: AdaRoundLayer] {
    var layers: [String: AdaRoundLayer] = [:]
    for (name, grid) in grids {
      guard let shape = block.linearShapes[name], shape == [grid.rows, grid.columns] else {
        throw TrainingError.invalidInput(
          operation: "AdaRound",
          reason: "grid '\(name)' (\(grid.rows) x \(grid.columns)) matches no linear weight of the block")
      }
      do {
        layers[name] = try AdaRoundLayer(weights: try block.linearWeight(named: name), grid: grid)
      } catch {
        throw TrainingError.invalidInput(operation: "AdaRound", reason: "'\(name)': \(error)")
      }
    }
    return layers
  }
}
