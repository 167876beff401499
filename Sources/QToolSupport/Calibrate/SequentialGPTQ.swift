import QCompute
import QEngine

/// Calibrated quantization of a decoder's linear layers in GPTQ's sequential order: each block
/// is calibrated on the outputs of the blocks before it as quantized, and (with `trueSequential`)
/// o, gate/up and down on the inputs that the already quantized layers of their block produce.
public enum SequentialGPTQ {
  /// How each planned tensor is quantized from its Gram matrix.
  public enum Method: Sendable, Hashable {
    /// GPTQ on the tensor's grid.
    case gptq(GPTQ.Options = GPTQ.Options())
    /// SPEED-Q's asymmetric clip search under the Gram matrix, at the grid's bits and group size.
    case clip
    /// Round-to-nearest on the grid (no calibration): the baseline.
    case roundToNearest
  }

  public struct Options: Sendable, Hashable {
    /// Re-collect the Gram matrices after each stage of a block (q/k/v, o, gate/up, down).
    public var trueSequential: Bool
    /// Put before every tensor name, e.g. `language_model.` for a LLaVA checkpoint.
    public var prefix: String
    /// Without act-order, make each group's layout grid when GPTQ reaches it, from the weights
    /// as updated so far (as GPTQ makes its own grids), rather than all from the original ones.
    public var regridsGroups: Bool
    /// After the last block, quantize the output head too (the embedding, when they are
    /// tied), on the final norm's outputs of the quantized blocks: the logits' error is what
    /// it minimizes, which matters most where the head takes a low-bit grid.
    public var quantizesHead: Bool

    public init(
      trueSequential: Bool = true, prefix: String = "", quantizesHead: Bool = false, regridsGroups: Bool = false
    ) {
      self.trueSequential = trueSequential
      self.prefix = prefix
      self.quantizesHead = quantizesHead
      self.regridsGroups = regridsGroups
    }
  }

  /// Where the run is, for a progress line.
  public struct Progress: Sendable {
    public var block: Int
    public var blocks: Int
    /// The tensor just quantized.
    public var tensor: String
  }

  /// The stages of a block, by the input their layers read: q/k/v, o, gate/up, down.
  static let stages: [[LinearInput]] = [[.attentionInput], [.attentionOutput], [.mlpInput], [.mlpHidden]]

  /// Quantizes every q/k/v/o/gate/up/down weight `plan` gives a grid (`nil` keeps it), with
  /// `windows` as calibration data; returns the quantized matrices by tensor name.
  ///
  /// Weights are quantized as the checkpoint stores them: a fused one (Phi-3's `qkv_proj`,
  /// `gate_up_proj`) is one matrix under its slots' shared Gram matrix, which is the same as
  /// quantizing its row blocks apart, since GPTQ's rows only share the Hessian.
  /// - Throws: `CalibrateError.tensorFailed` naming the tensor a quantizer rejected, or the
  ///   engine's error for a bad window.
  public static func run(
    model: DecoderModel, windows: [[Int]], plan: (String) -> CalibratedGrid?, method: Method,
    options: Options = Options(), progress: ((Progress) -> Void)? = nil
  ) throws -> [String: QuantizedMatrix] {
    var result: [String: QuantizedMatrix] = [:]
    try eachPlannedLinear(
      model: model, windows: windows, planned: { plan($0) != nil }, collectsGrams: method != .roundToNearest,
      options: options, progress: progress
    ) { name, weight, gram in
      guard let grid = plan(name) else { return nil }
      let quantized = try quantize(
        weight.values, rows: weight.rows, columns: weight.columns, gram: gram, grid: grid, method: method,
        tensor: name)
      result[name] = quantized
      return quantized.dequantize()
    }
    return result
  }

  /// A layout's stored grid for one weight, or for the columns of it from `firstColumn` on,
  /// from their values `[rows, columns]` and each input column's energy on the calibration
  /// windows (the Gram matrix's diagonal: the squared inputs summed, what an importance matrix
  /// records up to one common factor); `nil` leaves the weight to the layout's own encoder.
  public typealias StoredGridMaker = (
    _ weights: UnsafeBufferPointer<Float>, _ rows: Int, _ columns: Int, _ inputEnergy: [Float], _ firstColumn: Int
  ) throws -> StoredGrid?

  /// GPTQ onto layouts' stored grids, in the same sequential order: `plan` gives each planned
  /// tensor's grid maker (`nil` keeps it out), and the model runs on with the values the
  /// runtime will read back. Returns the decided codes by tensor name.
  ///
  /// - Throws: `CalibrateError.tensorFailed` naming the tensor GPTQ or its grid rejected.
  public static func run(
    model: DecoderModel, windows: [[Int]], storedGrids plan: (String) -> StoredGridMaker?, gptq: GPTQ.Options,
    options: Options = Options(), progress: ((Progress) -> Void)? = nil
  ) throws -> [String: StoredCodes] {
    var result: [String: StoredCodes] = [:]
    try eachPlannedLinear(
      model: model, windows: windows, planned: { plan($0) != nil }, collectsGrams: true, options: options,
      progress: progress
    ) { name, weight, gram in
      guard let maker = plan(name) else { return nil }
      guard let gram else { throw CalibrateError.missingGram(tensor: name) }
      do {
        let decided = try weight.values.withUnsafeBufferPointer { buffer -> StoredCodes? in
          let energy = (0..<gram.rows).map { Float(gram[$0, $0]) }
          guard let grid = try maker(buffer, weight.rows, weight.columns, energy, 0) else { return nil }
          guard options.regridsGroups, !gptq.actOrder else {
            return try GPTQ.quantize(buffer, hessian: gram, onto: grid, options: gptq).codes
          }
          return try GPTQ.quantize(
            buffer, rows: weight.rows, columns: weight.columns, hessian: gram, groupLength: grid.groupLength,
            regridding: { values, rows, columns, first in
              let slice = Array(energy[first..<(first + columns)])
              guard let group = try maker(values, rows, columns, slice, first) else {
                throw CalibrateError.tensorFailed(
                  tensor: name, reason: "the layout made no grid for columns \(first)..<\(first + columns)")
              }
              return group
            }, options: gptq
          ).codes
        }
        guard let decided else { return nil }
        result[name] = decided
        return decided.dequantize()
      } catch let error as CalibrateError {
        throw error
      } catch {
        throw CalibrateError.tensorFailed(tensor: name, reason: "\(error)")
      }
    }
    return result
  }

  /// Walks the model's planned linears block by block and stage by stage, handing each its
  /// weight and (when collected) its input Gram matrix; `quantize` returns the values the
  /// model runs on from then on, or `nil` to leave the weight as it is. With
  /// `options.quantizesHead`, the planned output head comes last.
  static func eachPlannedLinear(
    model: DecoderModel, windows: [[Int]], planned: (String) -> Bool, collectsGrams: Bool, options: Options,
    progress: ((Progress) -> Void)?,
    quantize: (_ name: String, _ weight: (values: [Float], rows: Int, columns: Int), _ gram: Matrix<Double>?) throws -> [Float]?
  ) throws {
    let collector = CalibrationCollector(model: model, prefix: options.prefix)
    try collector.start(windows: windows)
    let stages = options.trueSequential ? Self.stages : [LinearInput.allCases]
    let linears = model.configuration.architecture.storedLinears
    for block in 0..<model.blockCount {
      for stage in stages {
        let chosen = linears.filter {
          stage.contains($0.input) && planned($0.tensorName(block: block, prefix: options.prefix))
        }
        if chosen.isEmpty { continue }
        var grams: [LinearInput: Matrix<Double>] = [:]
        if collectsGrams {
          grams = try collector.grams(of: Set(chosen.map(\.input)))
        }
        for linear in chosen {
          let name = linear.tensorName(block: block, prefix: options.prefix)
          let weight = try collector.weights(of: linear)
          if let values = try quantize(name, weight, grams[linear.input]) {
            try collector.replace(linear, with: values)
          }
          progress?(Progress(block: block, blocks: model.blockCount, tensor: name))
        }
      }
      try collector.advance()
    }
    let head = collector.headTensorName
    guard options.quantizesHead, planned(head) else { return }
    let gram = collectsGrams ? try collector.headGram() : nil
    // Nothing runs after the head: its quantized values are not needed.
    _ = try quantize(head, collector.headWeights(), gram)
    progress?(Progress(block: model.blockCount, blocks: model.blockCount, tensor: head))
  }

  /// One tensor on `grid` by `method`; `gram` may be `nil` only for round-to-nearest.
  public static func quantize(
    _ weights: [Float], rows: Int, columns: Int, gram: Matrix<Double>?, grid: CalibratedGrid,
    method: Method, tensor: String
  ) throws -> QuantizedMatrix {
    do {
      switch method {
      case .roundToNearest:
        return try weights.withUnsafeBufferPointer { buffer throws(QuantizeError) in
          try grid.roundToNearest(buffer, rows: rows, columns: columns)
        }
      case .gptq(let gptqOptions):
        guard let gram else { throw CalibrateError.missingGram(tensor: tensor) }
        return try GPTQ.quantize(
          weights, rows: rows, columns: columns, hessian: gram, grid: grid, options: gptqOptions
        ).quantized
      case .clip:
        guard let gram else { throw CalibrateError.missingGram(tensor: tensor) }
        return try GramClipSearch.quantize(
          weights, rows: rows, columns: columns, hessian: gram, bits: grid.bits,
          groupSize: grid.groupSize
        ).quantized
      }
    } catch let error as CalibrateError {
      throw error
    } catch {
      throw CalibrateError.tensorFailed(tensor: tensor, reason: "\(error)")
    }
  }
}
