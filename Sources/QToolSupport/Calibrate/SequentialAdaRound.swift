import QCompute
import QEngine

/// Block-wise AdaRound over a decoder, block after block: each block's grids come from the
/// Gram-weighted clip search and stay fixed, and the rounding of its linears is learned
/// together against the full-precision block.
///
/// Inputs and targets follow BRECQ (`asym=True`), as the AdaRound and BRECQ papers recommend:
/// the block's input is what the already quantized blocks before it produce, and its target is
/// the full-precision model's block output on full-precision inputs, so each block also
/// corrects the error that reaches it. Memory is the windows' activations at one block, twice.
public enum SequentialAdaRound {
  /// How each linear's fixed grid is chosen before its rounding is learned.
  public enum GridSearch: String, Sendable, CaseIterable {
    /// The clip search under the layer's input Gram matrix (output error): slower, better.
    case gram
    /// The clip search on the weights alone (weight error): no Gram matrices, much faster.
    case weights
  }

  /// Where the run is, for a progress line.
  public struct Progress: Sendable {
    public var block: Int
    public var blocks: Int
    /// The step within the block, 0 when the block starts.
    public var iteration: Int
    public var iterations: Int
    /// The mean squared block-output error of the last step's batch (soft weights).
    public var reconstruction: Float
  }

  /// What one block's run achieved, on all calibration windows.
  public struct BlockReport: Sendable {
    public var block: Int
    /// The mean squared output error with the clip search's round-to-nearest codes.
    public var nearestError: Double
    /// The same with AdaRound's codes.
    public var adaRoundError: Double
    /// Whether AdaRound's codes were kept (else the nearest ones, which did better).
    public var keptAdaRound: Bool
  }

  /// Quantizes every q/k/v/o/gate/up/down weight `plan` gives an affine grid (`nil` keeps it)
  /// with `windows` as calibration data; returns the quantized matrices by tensor name.
  /// - Throws: `CalibrateError.tensorFailed` naming a tensor the grid rejected, or the engine's
  ///   error for a bad window.
  public static func run(
    model: DecoderModel, windows: [[Int]], plan: (String) -> CalibratedGrid?, options: AdaRound.Options,
    gridSearch: GridSearch = .gram, prefix: String = "", progress: ((Progress) -> Void)? = nil, report: ((BlockReport) -> Void)? = nil
  ) throws -> [String: QuantizedMatrix] {
    let quantizedPath = CalibrationCollector(model: model, prefix: prefix)
    let fullPrecision = CalibrationCollector(model: model, prefix: prefix)
    try quantizedPath.start(windows: windows)
    try fullPrecision.start(windows: windows)
    let lengths = windows.map(\.count)
    var result: [String: QuantizedMatrix] = [:]
    for block in 0..<model.blockCount {
      try fullPrecision.advance()
      // As the checkpoint stores them: a fused weight's rounding is learned as one matrix.
      let planned = model.configuration.architecture.storedLinears.compactMap { linear -> (StoredLinear, CalibratedGrid)? in
        guard let grid = plan(linear.tensorName(block: block, prefix: prefix)) else { return nil }
        return (linear, grid)
      }
      guard !planned.isEmpty else {
        try quantizedPath.advance()
        continue
      }
      let grams = gridSearch == .gram ? try quantizedPath.grams(of: Set(planned.map(\.0.input))) : [:]
      var grids: [String: QuantizedMatrix] = [:]
      for (linear, grid) in planned {
        let name = linear.tensorName(block: block, prefix: prefix)
        guard case .affine = grid else {
          throw CalibrateError.tensorFailed(tensor: name, reason: "AdaRound needs an affine grid, not \(grid)")
        }
        let weight = try quantizedPath.weights(of: linear)
        switch gridSearch {
        case .gram:
          grids[name] = try SequentialGPTQ.quantize(
            weight.values, rows: weight.rows, columns: weight.columns, gram: grams[linear.input], grid: grid,
            method: .clip, tensor: name)
        case .weights:
          do {
            grids[name] = try weight.values.withUnsafeBufferPointer { buffer in
              try ClipSearchQuantizer.quantize(
                buffer, rows: weight.rows, columns: weight.columns, bits: grid.bits, groupSize: grid.groupSize)
            }
          } catch {
            throw CalibrateError.tensorFailed(tensor: name, reason: "\(error)")
          }
        }
      }
      let decoderBlock = try DecoderBlock(model: model, block: block, prefix: prefix)
      let batches = zip(quantizedPath.currentInputs, fullPrecision.currentInputs).enumerated().map {
        BlockBatch(input: $1.0, target: $1.1, lengths: [lengths[$0]])
      }
      progress?(
        Progress(block: block, blocks: model.blockCount, iteration: 0, iterations: options.iterations, reconstruction: 0))
      let learned = try AdaRound.optimize(block: decoderBlock, batches: batches, grids: grids, options: options) { step in
        progress?(
          Progress(
            block: block, blocks: model.blockCount, iteration: step.iteration, iterations: step.iterations,
            reconstruction: step.reconstruction))
      }
      // Hard rounding after a short run can land above the nearest codes it started from; keep
      // whichever does better on the calibration windows, so no block ends worse than the grid's
      // round-to-nearest.
      let nearestError = try meanSquaredError(decoderBlock, batches, grids)
      let adaRoundError = try meanSquaredError(decoderBlock, batches, learned)
      let kept = adaRoundError <= nearestError ? learned : grids
      report?(
        BlockReport(
          block: block, nearestError: nearestError, adaRoundError: adaRoundError,
          keptAdaRound: adaRoundError <= nearestError))
      for (linear, _) in planned {
        let name = linear.tensorName(block: block, prefix: prefix)
        guard let matrix = kept[name] else { continue }
        try quantizedPath.replace(linear, with: matrix.dequantize())
        result[name] = matrix
      }
      try quantizedPath.advance()
    }
    return result
  }

  /// The mean squared output error of `block` with `matrices` in place of its weights.
  static func meanSquaredError(
    _ block: DecoderBlock, _ batches: [BlockBatch], _ matrices: [String: QuantizedMatrix]
  ) throws -> Double {
    let weights = matrices.mapValues { $0.dequantize() }
    var sum = 0.0
    var count = 0
    for batch in batches {
      let output = try block.output(input: batch.input, lengths: batch.lengths, replacing: weights)
      for (value, target) in zip(output, batch.target) {
        let difference = Double(value) - Double(target)
        sum += difference * difference
      }
      count += output.count
    }
    return sum / Double(max(1, count))
  }
}
