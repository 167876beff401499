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
    let collector = CalibrationCollector(model: model, prefix: options.prefix)
    try collector.start(windows: windows)
    var result: [String: QuantizedMatrix] = [:]
    let stages = options.trueSequential ? Self.stages : [LinearInput.allCases]
    let linears = model.configuration.architecture.storedLinears
    for block in 0..<model.blockCount {
      for stage in stages {
        let planned = linears.filter { stage.contains($0.input) }.compactMap { linear in
          plan(linear.tensorName(block: block, prefix: options.prefix)).map { (linear, $0) }
        }
        if planned.isEmpty { continue }
        var grams: [LinearInput: Matrix<Double>] = [:]
        if method != .roundToNearest {
          grams = try collector.grams(of: Set(planned.map(\.0.input)))
        }
        for (linear, grid) in planned {
          let name = linear.tensorName(block: block, prefix: options.prefix)
          let weight = try collector.weights(of: linear)
          let quantized = try quantize(
            weight.values, rows: weight.rows, columns: weight.columns, gram: grams[linear.input],
            grid: grid, method: method, tensor: name)
          try collector.replace(linear, with: quantized.dequantize())
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
