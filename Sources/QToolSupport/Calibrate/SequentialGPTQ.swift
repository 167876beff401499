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

    public init(trueSequential: Bool = true, prefix: String = "") {
      self.trueSequential = trueSequential
      self.prefix = prefix
    }
  }

  /// Where the run is, for a progress line.
  public struct Progress: Sendable {
    public var block: Int
    public var blocks: Int
    /// The tensor just quantized.
    public var tensor: String
  }

  static let stages: [[LinearSlot]] = [[.query, .key, .value], [.output], [.gate, .up], [.down]]

  /// Quantizes every q/k/v/o/gate/up/down weight `plan` gives a grid (`nil` keeps it), with
  /// `windows` as calibration data; returns the quantized matrices by tensor name.
  /// - Throws: `CalibrateError.tensorFailed` naming the tensor a quantizer rejected, or the
  ///   engine's error for a bad window.
  public static func run(
    model: DecoderModel, windows: [[Int]], plan: (String) -> CalibratedGrid?, method: Method,
    options: Options = Options(), progress: ((Progress) -> Void)? = nil
  ) throws -> [String: QuantizedMatrix] {
    let collector = CalibrationCollector(model: model, prefix: options.prefix)
    try collector.start(windows: windows)
    var result: [String: QuantizedMatrix] = [:]
    let stages = options.trueSequential ? Self.stages : [LinearSlot.allCases]
    for block in 0..<model.blockCount {
      for stage in stages {
        let planned = stage.compactMap { slot in
          plan(slot.tensorName(block: block, prefix: options.prefix)).map { (slot, $0) }
        }
        if planned.isEmpty { continue }
        var grams: [LinearInput: Matrix<Double>] = [:]
        if method != .roundToNearest {
          grams = try collector.grams(of: Set(planned.map(\.0.input)))
        }
        for (slot, grid) in planned {
          let name = slot.tensorName(block: block, prefix: options.prefix)
          let weight = try collector.weights(of: slot)
          let quantized = try quantize(
            weight.values, rows: weight.rows, columns: weight.columns, gram: grams[slot.input],
            grid: grid, method: method, tensor: name)
          try collector.replace(slot, with: quantized.dequantize())
          result[name] = quantized
          progress?(Progress(block: block, blocks: model.blockCount, tensor: name))
        }
      }
      try collector.advance()
    }
    return result
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
