import Foundation

/// One linear weight under adaptive rounding (AdaRound, Nagel et al. 2020) on a fixed grid: each
/// weight rounds down or up by a learned `h(V)` instead of to nearest.
///
/// The soft weight is `w̃ = s (clamp(⌊w/s⌋ + z + h(V), 0, 2^b - 1) - z)` on a zero-point grid and
/// `w̃ = s clamp(⌊(w - o)/s⌋ + h(V), 0, 2^b - 1) + o` on a bias grid, with
/// `h(V) = clamp(σ(V)(ζ - γ) + γ, 0, 1)`; the grid (scales, offsets, second level) stays as
/// given, so the hard codes are stored exactly like the grid's own.
public struct AdaRoundLayer: Sendable {
  /// The rectified sigmoid's stretch: ζ = 1.1, γ = -0.1 as in the paper.
  public static let zeta: Float = 1.1
  public static let gamma: Float = -0.1

  /// The grid, its codes the round-to-nearest ones it came with.
  public let grid: QuantizedMatrix
  /// `⌊(w - offset)/s⌋` in code units, per weight (the grid's code for a zero-scale group).
  public let floors: [Float]
  /// The rounding variables `V`, per weight.
  public var logits: [Float]
  /// Each weight's group scale and offset (bias or zero point, as the grid stores it).
  let weightScales: [Float]
  let weightOffsets: [Float]
  let levels: Float
  let isBias: Bool

  /// Starts from `weights` (row-major, the grid's shape) with `h(V)` equal to each weight's
  /// fractional position between its two grid neighbours.
  /// - Throws: `CalibrationError.invalidOption` when the weight count does not match the grid.
  public init(weights: [Float], grid: QuantizedMatrix) throws(CalibrationError) {
    let count = grid.rows * grid.columns
    guard weights.count == count, grid.codes.count == count, grid.scales.count == grid.rows * grid.groupsPerRow,
      grid.offsets.count == grid.scales.count
    else {
      throw .invalidOption(
        operation: "AdaRound",
        detail: "\(weights.count) weights do not fit a \(grid.rows) x \(grid.columns) grid of \(grid.scales.count) groups")
    }
    self.grid = grid
    levels = Float((1 << grid.bits) - 1)
    let length = grid.groupLength
    let groups = grid.groupsPerRow
    var floors = [Float](repeating: 0, count: count)
    var logits = floors
    var weightScales = floors
    var weightOffsets = floors
    let isBias = grid.offsetKind == .bias
    self.isBias = isBias
    for row in 0..<grid.rows {
      for column in 0..<grid.columns {
        let index = row &* grid.columns &+ column
        let group = row &* groups &+ column / length
        let scale = grid.scales[group]
        let offset = grid.offsets[group]
        weightScales[index] = scale
        weightOffsets[index] = offset
        guard scale != 0, scale.isFinite else {
          floors[index] = Float(grid.codes[index])
          logits[index] = -10
          continue
        }
        let position = isBias ? (weights[index] - offset) / scale : weights[index] / scale + offset
        let below = position.rounded(.down)
        floors[index] = below
        logits[index] = Self.initialLogit(fraction: position - below)
      }
    }
    self.floors = floors
    self.logits = logits
    self.weightScales = weightScales
    self.weightOffsets = weightOffsets
  }

  /// `h(V) = clamp(σ(V)(ζ - γ) + γ, 0, 1)`.
  @inline(__always)
  public static func rectifiedSigmoid(_ v: Float) -> Float {
    min(max(1 / (1 + exp(-v)) * (zeta - gamma) + gamma, 0), 1)
  }

  /// `dh/dV`: `σ(1 - σ)(ζ - γ)` inside the clamp, 0 where it saturates.
  @inline(__always)
  public static func rectifiedSigmoidDerivative(_ v: Float) -> Float {
    let sigma = 1 / (1 + exp(-v))
    let stretched = sigma * (zeta - gamma) + gamma
    return stretched > 0 && stretched < 1 ? sigma * (1 - sigma) * (zeta - gamma) : 0
  }

  /// The `V` with `h(V) = fraction`: `-log((ζ - γ)/(fraction - γ) - 1)`.
  public static func initialLogit(fraction: Float) -> Float {
    -Foundation.log((zeta - gamma) / (fraction - gamma) - 1)
  }

  /// `h(V)` of every weight.
  public var roundingFractions: [Float] { logits.map(Self.rectifiedSigmoid) }

  /// The soft weights `w̃(V)`, row-major, in the same arithmetic as `QuantizedMatrix.dequantize`
  /// so that weights with `h(V)` at 0 or 1 equal the hard ones exactly.
  public func softWeights() -> [Float] {
    var out = [Float](repeating: 0, count: logits.count)
    for index in out.indices {
      let code = min(max(floors[index] + Self.rectifiedSigmoid(logits[index]), 0), levels)
      out[index] =
        isBias
        ? weightScales[index] * code + weightOffsets[index] : weightScales[index] * (code - weightOffsets[index])
    }
    return out
  }

  /// `dL/dV` from `dL/dw̃`: `s h'(V)` where the clamp to the code range passes, else 0.
  public func logitGradient(weightGradient: [Float]) -> [Float] {
    var out = [Float](repeating: 0, count: logits.count)
    for index in out.indices {
      let v = logits[index]
      let code = floors[index] + Self.rectifiedSigmoid(v)
      guard code >= 0, code <= levels else { continue }
      out[index] = weightGradient[index] * weightScales[index] * Self.rectifiedSigmoidDerivative(v)
    }
    return out
  }

  /// The rounding regulariser `Σ (1 - |2h(V) - 1|^β)` and its gradient with respect to `V`.
  public func regulariser(beta: Float) -> (value: Double, gradient: [Float]) {
    var value = 0.0
    var gradient = [Float](repeating: 0, count: logits.count)
    for index in logits.indices {
      let v = logits[index]
      let centred = 2 * Self.rectifiedSigmoid(v) - 1
      let magnitude = abs(centred)
      value += Double(1 - pow(magnitude, beta))
      guard magnitude > 0 else { continue }
      // d/dh (1 - |2h - 1|^β) = -2β |2h - 1|^(β-1) sign(2h - 1).
      let dh = -2 * beta * pow(magnitude, beta - 1) * (centred > 0 ? 1 : -1)
      gradient[index] = dh * Self.rectifiedSigmoidDerivative(v)
    }
    return (value, gradient)
  }

  /// One optimiser step's gradient in one pass (one sigmoid and one power per weight):
  /// `scale · logitGradient(weightGradient)` plus `λ ·` the regulariser's gradient when `beta`
  /// is given; returns the regulariser's value too (0 without `beta`).
  public func combinedGradient(
    weightGradient: [Float], scale: Float, regularisation lambda: Float, beta: Float?
  ) -> (gradient: [Float], regulariser: Double) {
    var gradient = [Float](repeating: 0, count: logits.count)
    var value = 0.0
    let stretch = Self.zeta - Self.gamma
    for index in gradient.indices {
      let sigma = 1 / (1 + exp(-logits[index]))
      let stretched = sigma * stretch + Self.gamma
      let h = min(max(stretched, 0), 1)
      let derivative: Float = stretched > 0 && stretched < 1 ? sigma * (1 - sigma) * stretch : 0
      let code = floors[index] + h
      var total: Float = 0
      if code >= 0, code <= levels {
        total = scale * weightGradient[index] * weightScales[index] * derivative
      }
      if let beta {
        let centred = 2 * h - 1
        let magnitude = abs(centred)
        let lower = magnitude > 0 ? pow(magnitude, beta - 1) : 0
        value += Double(1 - lower * magnitude)
        if magnitude > 0 {
          total += lambda * -2 * beta * lower * (centred > 0 ? 1 : -1) * derivative
        }
      }
      gradient[index] = total
    }
    return (gradient, value)
  }

  /// The hard codes: round up where `h(V) >= 0.5`, clamped to the code range.
  public func hardCodes() -> [UInt8] {
    var codes = [UInt8](repeating: 0, count: logits.count)
    for index in codes.indices {
      let up: Float = Self.rectifiedSigmoid(logits[index]) >= 0.5 ? 1 : 0
      codes[index] = UInt8(min(max(floors[index] + up, 0), levels))
    }
    return codes
  }

  /// The grid with the hard codes in place of its own.
  public func quantized() -> QuantizedMatrix {
    var matrix = grid
    matrix.codes = hardCodes()
    return matrix
  }
}
