import Foundation

/// Half-quadratic quantization (HQQ, calibration-free): min/max groups whose zero points are
/// refined by alternating a proximal lp-norm shrink of the error with a closed-form zero update;
/// the scale stays at its min/max value.
///
/// Follows `optimize_weights_proximal_legacy` of `mobiusml/hqq`: the early stop compares the mean
/// absolute error over the whole matrix and keeps the zero from the iteration that stopped it.
/// Means are accumulated in f64 here (the reference sums in f32), and zeros are not rounded.
///
/// Our deviation, on by default (`keepsBetterRoundToNearest`): HQQ minimises an lp (p = 0.7)
/// error with the min/max step fixed, which at 2 bits often costs more squared error than MLX's
/// round-to-nearest with its snapped edge (3-15% relative Frobenius error on SmolLM2-135M). Each
/// group therefore keeps whichever of HQQ's and `AffineQuantizer`'s solutions has the lower
/// squared error, the latter written as step s and zero point -bias / s (an integer), so 'hqq'
/// is never worse than round-to-nearest in the error a user measures.
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
    /// Per group, keep round-to-nearest's solution when its squared error is lower.
    public var keepsBetterRoundToNearest = true

    public init() {}
  }

  /// The widths the MLX layout stores; a qpack holds those of `BitPacking.supportedBits`.
  public static let supportedBits: Set<Int> = BitPacking.streamBits
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
              guard let zeroStart = zeroBuffer.baseAddress, let errorStart = errorBuffer.baseAddress
              else { return }
              let zeroBase = SendableMutablePointer(zeroStart)
              let errorBase = SendableMutablePointer(errorStart)
              forEachRowBlock(rows: rows, elementsPerRow: columns) { rowRange in
                let (zeros, errors) = (zeroBase.pointer, errorBase.pointer)
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
                      let code = roundedToEven(min(max(value * inverse + zero, 0), levels))
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

    let keepsRoundToNearest = options.keepsBetterRoundToNearest
    var scales = inverseScales.map { 1 / $0 }
    var finalZeros = zeros
    var codes = [UInt8](repeating: 0, count: count)
    codes.withUnsafeMutableBufferPointer { codeBuffer in
      scales.withUnsafeMutableBufferPointer { scaleBuffer in
        finalZeros.withUnsafeMutableBufferPointer { zeroBuffer in
          guard let codeStart = codeBuffer.baseAddress, let scaleStart = scaleBuffer.baseAddress,
            let zeroStart = zeroBuffer.baseAddress
          else { return }
          let target = SendableMutablePointer(codeStart)
          let scaleBase = SendableMutablePointer(scaleStart)
          let zeroBase = SendableMutablePointer(zeroStart)
          forEachRowBlock(rows: rows, elementsPerRow: columns) { rowRange in
            let (codes, scales, zeros) = (target.pointer, scaleBase.pointer, zeroBase.pointer)
            let scratchStorage = UnsafeMutableBufferPointer<UInt8>.allocate(capacity: length)
            defer { scratchStorage.deallocate() }
            let scratch = scratchStorage
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
                  let code = roundedToEvenBits(min(max(weights[element] * inverse + zero, 0), levels))
                  codes[element] = UInt8(truncatingIfNeeded: code)
                }
                guard keepsRoundToNearest else { continue }
                let groupCodes = UnsafeMutableBufferPointer(start: codes + first, count: length)
                let hqqError = squaredError(
                  slice, codes: UnsafeBufferPointer(groupCodes), scale: scales[index], zero: zero)
                let (step, bias) = AffineQuantizer.quantizeGroup(slice, levels: levels, into: scratch)
                // w = step * q + bias = step * (q - zero) with zero = -bias / step = -edge code.
                let roundedZero = bias == 0 ? 0 : roundedToEven(-bias / step)
                let roundError = squaredError(
                  slice, codes: UnsafeBufferPointer(scratch), scale: step, zero: roundedZero)
                if roundError < hqqError {
                  scales[index] = step
                  zeros[index] = roundedZero
                  _ = groupCodes.update(fromContentsOf: scratch)
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

  /// Sum of (w - scale * (q - zero))^2 over a group, as a reader reconstructs it.
  @inline(__always)
  static func squaredError(
    _ weights: UnsafeBufferPointer<Float>, codes: UnsafeBufferPointer<UInt8>, scale: Float,
    zero: Float
  ) -> Double {
    var total: Float = 0
    for index in 0..<weights.count {
      let difference = weights[index] - scale * (Float(codes[index]) - zero)
      total += difference * difference
    }
    return Double(total)
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
