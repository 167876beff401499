import Foundation
import QCompute
import QEngine
import QFormats

/// SPEED-Q's stage 1 (speedq.md 2): the vision tower quantized block by block on calibration
/// images, each block fed the outputs of the blocks before it as already quantized.
///
/// `adaRound` is the reference's optimiser (block-wise AdaRound, BRECQ's objective): each
/// linear's grid comes from the Gram-weighted asymmetric clip search (speedq.md 1.2), then the
/// rounding of all six linears is learned together so that the block, fed the quantized stream,
/// reproduces the FP block's output. `clipGPTQ` needs no training: per linear, in the block's
/// own order (q/k/v, then o, fc1, fc2, each on the inputs the quantized linears before it
/// produce), the clip search clamps the weights and GPTQ rounds them on the linear's grid.
public final class SpeedQStage1 {
  public enum Method: String, Sendable, CaseIterable {
    /// Clip-search grids, then block-wise AdaRound.
    case adaRound = "adaround"
    /// Gram clip search, then GPTQ on the clipped weights.
    case clipGPTQ = "clip-gptq"
    /// Round-to-nearest on each grid: the baseline, no calibration.
    case roundToNearest = "rtn"
  }

  public struct Configuration: Sendable, Equatable {
    public var method: Method
    /// Where finished blocks are saved for resuming; `nil` keeps nothing. An existing file
    /// there is resumed from.
    public var checkpointPath: String?
    /// Rows (tokens of whole images) per forward pass while calibrating, to bound memory.
    public var rowsPerChunk: Int
    public var gptq: GPTQ.Options
    public var adaRound: AdaRound.Options
    /// Rows (tokens of whole images) per AdaRound batch; `adaRound.batchesPerStep` of them make
    /// one step.
    public var rowsPerBatch: Int

    public init(
      method: Method = .adaRound, checkpointPath: String? = nil, rowsPerChunk: Int = 4096,
      gptq: GPTQ.Options = GPTQ.Options(), adaRound: AdaRound.Options = AdaRound.Options(),
      rowsPerBatch: Int = 1
    ) {
      self.method = method
      self.checkpointPath = checkpointPath
      self.rowsPerChunk = rowsPerChunk
      self.gptq = gptq
      self.adaRound = adaRound
      self.rowsPerBatch = rowsPerBatch
    }
  }

  /// One finished block, for a progress line.
  public struct Progress: Sendable {
    public var block: Int
    public var blocks: Int
    /// `mean((quantized block output - FP block output)²)` on the calibration images, with the
    /// quantized block fed the quantized stream: what block-wise reconstruction minimises.
    public var reconstructionError: Double
    /// Whether the block came from the resume checkpoint.
    public var resumed: Bool
  }

  public let encoder: VisionEncoder
  public let prefix: String
  public let configuration: Configuration
  /// The grid of each linear weight to quantize, by checkpoint name; others stay FP.
  public let grids: [String: CalibratedGrid]
  let lengths: [Int]
  var fpStream: [Float]
  var quantizedStream: [Float]

  /// Embeds the calibration images.
  /// - Parameters:
  ///   - prefix: the prefix the tower's tensors carry (`vision_tower.` in a LLaVA checkpoint).
  ///   - grids: the grid of every linear to quantize (the plan's vision policy).
  /// - Throws: `SpeedQError.invalidInput` without images; what the encoder throws for an image.
  public init(
    encoder: VisionEncoder, prefix: String, images: [PixelTensor], grids: [String: CalibratedGrid],
    configuration: Configuration = Configuration()
  ) throws {
    guard !images.isEmpty else {
      throw SpeedQError.invalidInput(operation: "SpeedQ stage 1", reason: "needs at least one calibration image")
    }
    self.encoder = encoder
    self.prefix = prefix
    self.grids = grids
    self.configuration = configuration
    let walker = try VisionBlockActivations(encoder: encoder, prefix: prefix, images: images)
    lengths = walker.lengths
    fpStream = walker.input
    quantizedStream = walker.input
  }

  /// What a resumed run must share with the run that saved the checkpoint.
  var fingerprint: String {
    let names = grids.keys.sorted().map { "\($0)=\(grids[$0].map { "\($0)" } ?? "")" }.joined(separator: ",")
    return "stage1 \(configuration.method.rawValue) images=\(lengths) damp=\(configuration.gptq.dampingFraction) "
      + "order=\(configuration.gptq.actOrder) \(adaRoundFingerprint) \(names)"
  }

  var adaRoundFingerprint: String {
    guard configuration.method == .adaRound else { return "" }
    let o = configuration.adaRound
    return "adaround=\(o.iterations),\(o.learningRate),\(o.regularisation),\(o.betaStart),\(o.betaEnd),"
      + "\(o.warmup),\(o.batchesPerStep),\(o.seed),rows=\(configuration.rowsPerBatch)"
  }

  /// Quantizes every planned linear of every block and returns the matrices by checkpoint name.
  /// - Throws: `SpeedQError.quantization` naming a weight its grid cannot take;
  ///   `SpeedQError.checkpoint` for a checkpoint of another run.
  public func run(progress: (Progress) -> Void = { _ in }) throws -> [String: QuantizedMatrix] {
    var results: [String: QuantizedMatrix] = [:]
    var resumedBlocks = 0
    if let path = configuration.checkpointPath, FileManager.default.fileExists(atPath: path) {
      (results, resumedBlocks) = try loadCheckpoint(from: path)
    }
    for index in 0..<encoder.blockCount {
      let block = try encoder.block(at: index, prefix: prefix)
      let planned = VisionLinearSlot.allCases.compactMap { slot -> (VisionLinearSlot, String, CalibratedGrid)? in
        guard let name = block.names[slot], let grid = grids[name] else { return nil }
        return (slot, name, grid)
      }
      let resumed = index < resumedBlocks
      let fpOutput = try chunkedOutput(of: block, input: fpStream, replacing: [:])
      var replacing: [String: [Float]] = [:]
      if resumed {
        for (_, name, _) in planned {
          guard let matrix = results[name] else {
            throw SpeedQError.checkpoint(
              path: configuration.checkpointPath ?? "", reason: "has no matrix for '\(name)' of block \(index)")
          }
          replacing[name] = matrix.dequantize()
        }
      } else if configuration.method == .adaRound {
        for (name, matrix) in try adaRound(block: block, planned: planned, fpOutput: fpOutput) {
          results[name] = matrix
          replacing[name] = matrix.dequantize()
        }
      } else {
        for stage in Self.stages {
          let inStage = planned.filter { stage.contains($0.0) }
          guard !inStage.isEmpty else { continue }
          let gram =
            configuration.method == .roundToNearest
            ? nil : try inputGram(of: block, slot: inStage[0].0, replacing: replacing)
          for (_, name, grid) in inStage {
            let matrix = try quantize(block: block, name: name, grid: grid, gram: gram)
            results[name] = matrix
            replacing[name] = matrix.dequantize()
          }
        }
      }
      let quantizedOutput = try chunkedOutput(of: block, input: quantizedStream, replacing: replacing)
      var error = 0.0
      for i in fpOutput.indices {
        let difference = Double(quantizedOutput[i] - fpOutput[i])
        error += difference * difference
      }
      fpStream = fpOutput
      quantizedStream = quantizedOutput
      if !resumed, let path = configuration.checkpointPath {
        try saveCheckpoint(results, blocks: index + 1, to: path)
      }
      progress(
        Progress(
          block: index, blocks: encoder.blockCount, reconstructionError: error / Double(max(fpOutput.count, 1)),
          resumed: resumed))
    }
    return results
  }

  /// The block's linears in the order their inputs become final: q/k/v share one input.
  static let stages: [Set<VisionLinearSlot>] = [[.query, .key, .value], [.output], [.fc1], [.fc2]]

  func quantize(block: VisionBlock, name: String, grid: CalibratedGrid, gram: Matrix<Double>?) throws
    -> QuantizedMatrix
  {
    guard let shape = block.linearShapes[name], shape.count == 2 else {
      throw SpeedQError.quantization(tensor: name, reason: "is not a linear of block \(block.index)")
    }
    let weight = try block.linearWeight(named: name)
    do {
      guard let gram else {
        return try weight.withUnsafeBufferPointer { try grid.roundToNearest($0, rows: shape[0], columns: shape[1]) }
      }
      let clipped = try GramClipSearch.quantize(
        weight, rows: shape[0], columns: shape[1], hessian: gram, bits: grid.bits, groupSize: grid.groupSize
      ).clippedWeights
      return try GPTQ.quantize(
        clipped, rows: shape[0], columns: shape[1], hessian: gram, grid: grid, options: configuration.gptq
      ).quantized
    } catch {
      throw SpeedQError.quantization(tensor: name, reason: "\(error)")
    }
  }

  /// The images of the stream in chunks of whole images of about `rowsPerChunk` rows.
  func chunks() -> [(rows: Range<Int>, lengths: [Int])] { chunks(rows: configuration.rowsPerChunk) }

  /// The images of the stream in chunks of whole images of about `limit` rows (at least one image each).
  func chunks(rows limit: Int) -> [(rows: Range<Int>, lengths: [Int])] {
    var result: [(Range<Int>, [Int])] = []
    var start = 0
    var current: [Int] = []
    var rows = 0
    for length in lengths {
      if rows > 0 && rows + length > limit {
        result.append((start..<(start + rows), current))
        start += rows
        current = []
        rows = 0
      }
      current.append(length)
      rows += length
    }
    if rows > 0 { result.append((start..<(start + rows), current)) }
    return result
  }

  func chunkedOutput(of block: VisionBlock, input: [Float], replacing: [String: [Float]]) throws -> [Float] {
    let width = block.width
    var output: [Float] = []
    output.reserveCapacity(input.count)
    for (rows, lengths) in chunks() {
      output += try block.output(
        input: Array(input[(rows.lowerBound * width)..<(rows.upperBound * width)]), lengths: lengths,
        replacing: replacing)
    }
    return output
  }

  /// `Xᵀ X` of the input of `slot` over the quantized stream, with `replacing` in effect.
  func inputGram(of block: VisionBlock, slot: VisionLinearSlot, replacing: [String: [Float]]) throws -> Matrix<Double> {
    let width = block.width
    var gram: [Double] = []
    var columns = 0
    for (rows, lengths) in chunks() {
      let input = Array(quantizedStream[(rows.lowerBound * width)..<(rows.upperBound * width)])
      let x = try block.linearInput(of: slot, input: input, lengths: lengths, replacing: replacing).map { Double($0) }
      let count = rows.count
      columns = x.count / max(count, 1)
      if gram.isEmpty { gram = [Double](repeating: 0, count: columns * columns) }
      try x.withUnsafeBufferPointer { a in
        try gram.withUnsafeMutableBufferPointer { c in
          try Linalg.gemm(
            a, rows: count, columns: columns, transposeA: true, a, rows: count, columns: columns, into: c, alpha: 1,
            beta: 1)
        }
      }
    }
    return try Matrix(rows: columns, columns: columns, elements: gram)
  }
}
