import Foundation
import QCompute

/// SPEED-Q's stage 2 for a LLaVA projector (`linear_1 → GELU → linear_2`): re-aligning it to a
/// quantized vision tower in closed form instead of by training (speedq.md 7).
public enum SpeedQStage2 {
  /// A refitted linear: LLaVA's `linear_2`, or Idefics3's connector.
  public struct Refit: Sendable, Equatable {
    /// `[outputs, hidden]`, row-major as a PyTorch Linear weight.
    public var weight: Matrix<Float>
    /// Empty for a linear without bias.
    public var bias: [Float]
  }

  /// Refits `linear_2` and its bias by least squares so that the projector applied to the
  /// quantized tower's features matches the FP projector applied to the FP tower's features.
  ///
  /// With `H = GELU(X_q W1ᵀ + b1)` and the target `Y = GELU(X_fp W1ᵀ + b1) W2ᵀ + b2`, it solves
  /// `min ‖[H 1] Θ − Y‖² + ridge ‖Θ_W − W2ᵀ‖²` (the bias is not penalised): the ridge pulls toward
  /// the FP `linear_2`, not toward zero, so scarce tokens leave it nearly as it was. GELU is the
  /// exact erf form.
  /// - Parameters:
  ///   - fpFeatures: `[tokens, visionWidth]`, the FP tower's output on the calibration images.
  ///   - quantizedFeatures: the same tokens from the quantized tower.
  ///   - ridge: 0 for plain least squares.
  /// - Throws: `SpeedQError.invalidInput` when shapes disagree or there are fewer tokens than
  ///   unknowns; `ComputeError` from the solver.
  public static func refitProjector(
    fpFeatures: Matrix<Float>, quantizedFeatures: Matrix<Float>, linear1Weight: Matrix<Float>, linear1Bias: [Float],
    linear2Weight: Matrix<Float>, linear2Bias: [Float], ridge: Double = 0
  ) throws -> Refit {
    let operation = "refitProjector"
    let (tokens, width) = (fpFeatures.rows, fpFeatures.columns)
    let hidden = linear1Weight.rows
    let outputs = linear2Weight.rows
    guard quantizedFeatures.rows == tokens, quantizedFeatures.columns == width, linear1Weight.columns == width,
      linear1Bias.count == hidden, linear2Weight.columns == hidden, linear2Bias.count == outputs
    else {
      throw SpeedQError.invalidInput(
        operation: operation,
        reason: "features [\(tokens), \(width)] and [\(quantizedFeatures.rows), \(quantizedFeatures.columns)], "
          + "linear_1 [\(linear1Weight.rows), \(linear1Weight.columns)] + \(linear1Bias.count), "
          + "linear_2 [\(outputs), \(linear2Weight.columns)] + \(linear2Bias.count) do not fit together")
    }
    guard tokens >= hidden + 1 || ridge > 0 else {
      throw SpeedQError.invalidInput(
        operation: operation, reason: "\(tokens) tokens cannot determine \(hidden + 1) unknowns per output")
    }
    // Double throughout: the normal equations of GELU features are poorly conditioned.
    func double(_ m: Matrix<Float>) throws -> Matrix<Double> {
      try Matrix(rows: m.rows, columns: m.columns, elements: m.elements.map { Double($0) })
    }
    let w1 = try double(linear1Weight)
    let w2 = try double(linear2Weight)
    let fpHidden = try activated(try double(fpFeatures), w1, linear1Bias)
    var target = try fpHidden.matmul(w2, transposeOther: true)
    target.withUnsafeMutableBufferPointer { values in
      for row in 0..<tokens {
        for column in 0..<outputs { values[row * outputs + column] += Double(linear2Bias[column]) }
      }
    }
    let quantizedHidden = try activated(try double(quantizedFeatures), w1, linear1Bias)
    return try fitLinear(inputs: quantizedHidden, targets: target, prior: w2, fitsBias: true, ridge: ridge)
  }

  /// Refits a bias-free linear (Idefics3's connector after the pixel shuffle) so that on the
  /// quantized tower's inputs it reproduces the FP linear on the FP tower's:
  /// `min ‖X_q Θ − X_fp Wᵀ‖² + ridge ‖Θ − Wᵀ‖²`.
  /// - Parameters:
  ///   - fpInputs: `[tokens, inputs]`, what the FP tower feeds the linear.
  ///   - quantizedInputs: the same tokens from the quantized tower.
  ///   - weight: the FP weight `[outputs, inputs]`.
  /// - Throws: `SpeedQError.invalidInput` when shapes disagree or there are fewer tokens than
  ///   unknowns without a ridge; `ComputeError` from the solver.
  public static func refitLinear(
    fpInputs: Matrix<Float>, quantizedInputs: Matrix<Float>, weight: Matrix<Float>, ridge: Double = 0
  ) throws -> Refit {
    let (tokens, width) = (fpInputs.rows, fpInputs.columns)
    guard quantizedInputs.rows == tokens, quantizedInputs.columns == width, weight.columns == width else {
      throw SpeedQError.invalidInput(
        operation: "refitLinear",
        reason: "inputs [\(tokens), \(width)] and [\(quantizedInputs.rows), \(quantizedInputs.columns)] "
          + "do not fit a [\(weight.rows), \(weight.columns)] weight")
    }
    guard tokens >= width || ridge > 0 else {
      throw SpeedQError.invalidInput(
        operation: "refitLinear", reason: "\(tokens) tokens cannot determine \(width) unknowns per output")
    }
    func double(_ m: Matrix<Float>) throws -> Matrix<Double> {
      try Matrix(rows: m.rows, columns: m.columns, elements: m.elements.map { Double($0) })
    }
    let prior = try double(weight)
    let target = try double(fpInputs).matmul(prior, transposeOther: true)
    return try fitLinear(
      inputs: try double(quantizedInputs), targets: target, prior: prior, fitsBias: false, ridge: ridge)
  }

  /// The linear layer (`[outputs, n]` weight, and a bias when `fitsBias`) that best maps
  /// `inputs` `[tokens, n]` to `targets` `[tokens, outputs]`:
  /// `min ‖[X 1] Θ − Y‖² + ridge ‖Θ_W − priorᵀ‖²`, the ridge pulling toward `prior` (the FP
  /// weight), never the bias.
  /// - Throws: `ComputeError` from the solver.
  static func fitLinear(
    inputs: Matrix<Double>, targets: Matrix<Double>, prior: Matrix<Double>, fitsBias: Bool, ridge: Double
  ) throws -> Refit {
    let (tokens, hidden, outputs) = (inputs.rows, inputs.columns, targets.columns)
    let unknowns = hidden + (fitsBias ? 1 : 0)
    // Design [X 1], with √ridge I rows under the weight columns (right side √ridge priorᵀ) when regularised.
    let extra = ridge > 0 ? hidden : 0
    var design = [Double](repeating: 0, count: (tokens + extra) * unknowns)
    var right = [Double](repeating: 0, count: (tokens + extra) * outputs)
    let h = inputs.elements
    let y = targets.elements
    for row in 0..<tokens {
      for column in 0..<hidden { design[row * unknowns + column] = h[row * hidden + column] }
      if fitsBias { design[row * unknowns + hidden] = 1 }
      for column in 0..<outputs { right[row * outputs + column] = y[row * outputs + column] }
    }
    let priorValues = prior.elements
    for index in 0..<extra {
      design[(tokens + index) * unknowns + index] = ridge.squareRoot()
      for column in 0..<outputs {
        right[(tokens + index) * outputs + column] = ridge.squareRoot() * priorValues[column * hidden + index]
      }
    }
    let solution = try Matrix<Double>.leastSquares(
      try Matrix(rows: tokens + extra, columns: unknowns, elements: design),
      try Matrix(rows: tokens + extra, columns: outputs, elements: right))
    var weight = [Float](repeating: 0, count: outputs * hidden)
    var bias = [Float]()
    for output in 0..<outputs {
      for column in 0..<hidden { weight[output * hidden + column] = Float(solution[column, output]) }
      if fitsBias { bias.append(Float(solution[hidden, output])) }
    }
    return Refit(weight: try Matrix(rows: outputs, columns: hidden, elements: weight), bias: bias)
  }

  /// `GELU(X W1ᵀ + b1)`, exact erf GELU.
  static func activated(_ features: Matrix<Double>, _ weight: Matrix<Double>, _ bias: [Float]) throws -> Matrix<Double> {
    var pre = try features.matmul(weight, transposeOther: true)
    let columns = pre.columns
    pre.withUnsafeMutableBufferPointer { values in
      for index in 0..<values.count {
        let x = values[index] + Double(bias[index % columns])
        values[index] = 0.5 * x * (1 + Foundation.erf(x / 2.0.squareRoot()))
      }
    }
    return pre
  }
}
