import Foundation

/// Half-quadratic quantization (HQQ, calibration-free): min/max groups whose zero points are
/// refined by alternating a proximal lp-norm shrink of the error with a closed-form zero update;
/// the scale stays at its min/max value.
///
/// Follows `optimize_weights_proximal_legacy` of `mobiusml/hqq`: the early stop compares the mean
/// absolute error over the whole matrix and keeps the zero from the iteration that stopped it.
/// Means are accumulated in f64 here (the reference sums in f32), and zeros are not rounded.
///
/// Constant groups deviate from the reference: there the inverse scale is capped at 2e4 and the
/// float zero -min * 2e4 restores the value only to within rounding (0.1 and 65504 are off).
/// The refinement runs as in the reference, so other groups are unaffected, and
/// a constant group is then stored with step |value| and zero 0 (1 when negative), exact.
public enum HQQQuantizer {
  public struct Options: Sendable, Hashable {
    /// The p of the lp-norm error; below 1 it favours sparse outliers.
    public var lpNorm: Float = 0.7
    public var beta: Double = 10
    /// Growth of beta per iteration.
    public var kappa: Double = 1.01
    public var iterations: Int = 20

    public init() {}
  }

  public static let supportedBits: Set<Int> = [2, 3, 4, 8]
  /// The reference caps the inverse scale of a constant group here.
  static let maximumInverseScale: Float = 2e4

  public static func quantize(
    _ weights: UnsafeBufferPointer<Float>, rows: Int, columns: Int, bits: Int,
    groupSize: GroupSize, options: Options = Options()
  ) throws(QuantizeError) -> QuantizedMatrix {
    let length = try validatedGroupLength(
      quantizer: "HQQQuantizer", count: weights.count, rows: rows, columns: columns, bits: bits,
      allowedBits: supportedBits, groupSize: groupSize)
    let levels = Float((1 << bits) - 1)
    // Inverse scales and zeros from min/max, as the reference starts.
    let start = quantizeGroups(weights, rows: rows, columns: columns, groupLength: length) {
      group, _ in
      let (low, high) = minMax(group)
      let inverse = min(levels / (high - low), maximumInverseScale)
      return (inverse, -low * inverse)
    }
    let inverseScales = start.scales
    var zeros = start.offsets
    let groupsPerRow = length == 0 ? 0 : columns / length
    let count = rows * columns

    if count > 0 {
      var beta = options.beta
      var bestError = 1e4
      var rowErrors = [Double](repeating: 0, count: rows)
      for _ in 0..<options.iterations {
        let shrinkWeight = Float(1 / beta)
        let lpNorm = options.lpNorm
        inverseScales.withUnsafeBufferPointer { inverseScales in
          zeros.withUnsafeMutableBufferPointer { zeroBuffer in
            rowErrors.withUnsafeMutableBufferPointer { errorBuffer in
              let zeroBase = SendableMutablePointer(zeroBuffer.baseAddress)
              let errorBase = SendableMutablePointer(errorBuffer.baseAddress)
              forEachRowBlock(rows: rows, elementsPerRow: columns) { rowRange in
                guard let zeros = zeroBase.pointer, let errors = errorBase.pointer else { return }
                for row in rowRange {
                  var rowError = 0.0
                  for group in 0..<groupsPerRow {
                    let slot = row &* groupsPerRow &+ group
                    let inverse = inverseScales[slot]
                    let zero = zeros[slot]
                    var zeroSum = 0.0
                    let first = row &* columns &+ group &* length
                    for index in first..<(first &+ length) {
                      let value = weights[index]
                      let code = min(max((value * inverse + zero).rounded(.toNearestOrEven), 0), levels)
                      let restored = (code - zero) / inverse
                      let difference = value - restored
                      let shrunk = shrink(difference, weight: shrinkWeight, lpNorm: lpNorm)
                      zeroSum += Double(code - (value - shrunk) * inverse)
                      rowError += Double(abs(difference))
                    }
                    zeros[slot] = Float(zeroSum / Double(length))
                  }
                  errors[row] = rowError
                }
              }
            }
          }
        }
        beta *= options.kappa
        let currentError = rowErrors.reduce(0, +) / Double(count)
        if currentError < bestError {
          bestError = currentError
        } else {
          break
        }
      }
    }

    var scales = inverseScales.map { 1 / $0 }
    var finalZeros = zeros
    var codes = [UInt8](repeating: 0, count: count)
    codes.withUnsafeMutableBufferPointer { codeBuffer in
      scales.withUnsafeMutableBufferPointer { scaleBuffer in
        finalZeros.withUnsafeMutableBufferPointer { zeroBuffer in
          let target = SendableMutablePointer(codeBuffer.baseAddress)
          let scaleBase = SendableMutablePointer(scaleBuffer.baseAddress)
          let zeroBase = SendableMutablePointer(zeroBuffer.baseAddress)
          forEachRowBlock(rows: rows, elementsPerRow: columns) { rowRange in
            guard let codes = target.pointer, let scales = scaleBase.pointer,
              let zeros = zeroBase.pointer
            else { return }
            for row in rowRange {
              for group in 0..<groupsPerRow {
                let index = row &* groupsPerRow &+ group
                let first = row &* columns &+ group &* length
                let slice = UnsafeBufferPointer(rebasing: weights[first..<(first &+ length)])
                if let constant = constantValue(slice) {
                  // See the type's note: the value itself becomes the step, restored exactly.
                  scales[index] = constant == 0 ? scales[index] : abs(constant)
                  zeros[index] = constant < 0 ? 1 : 0
                  let code: UInt8 = constant > 0 ? 1 : 0
                  for element in first..<(first &+ length) { codes[element] = code }
                  continue
                }
                let inverse = inverseScales[index]
                let zero = zeros[index]
                for element in first..<(first &+ length) {
                  let code = (weights[element] * inverse + zero).rounded(.toNearestOrEven)
                  codes[element] = UInt8(min(max(code, 0), levels))
                }
              }
            }
          }
        }
      }
    }
    return QuantizedMatrix(
      method: .hqq, bits: bits, groupSize: groupSize, rows: rows, columns: columns, codes: codes,
      scales: scales, offsets: finalZeros, secondLevel: nil)
  }

  /// The value every element of a non-empty group shares, or nil when they differ.
  @inline(__always)
  static func constantValue(_ values: UnsafeBufferPointer<Float>) -> Float? {
    guard let first = values.first else { return nil }
    for value in values where value != first { return nil }
    return first
  }

  /// The proximal operator of the lp-norm: sign(x) * relu(|x| - |x|^(p-1) / beta).
  @inline(__always)
  static func shrink(_ value: Float, weight: Float, lpNorm: Float) -> Float {
    let magnitude = abs(value)
    let reduced =
      lpNorm == 1 ? magnitude - weight : magnitude - weight * powf(magnitude, lpNorm - 1)
    let kept = max(reduced, 0)
    return value > 0 ? kept : (value < 0 ? -kept : 0)
  }
}
