import CKernels
import Dispatch
import QCompute
import QFormats

/// A weight kept as its checkpoint's 16-bit floats (F16 or BF16), half the memory of a float
/// copy and half the bytes read per decoding step.
///
/// Widening a 16-bit float to `Float` is exact, so every product here equals the product of
/// the widened matrix up to the order of summation: a decoding step widens in registers
/// (`qk_half_rows_dot`, F16C where the CPU has it), a long input widens a tile of rows at a time
/// and multiplies it through BLAS.
public struct HalfWeight: Sendable {
  public enum Format: Sendable {
    case f16
    case bf16
  }

  public let rows: Int
  public let columns: Int
  public let format: Format
  /// `rows * columns` 16-bit floats, row-major.
  let values: [UInt16]

  public init(
    rows: Int, columns: Int, format: Format, values: [UInt16], location: String = "-", name: String = "weight"
  ) throws(DecoderError) {
    guard rows >= 0, columns >= 0, values.count == rows * columns else {
      throw .invalidWeight(
        location: location, tensor: name,
        reason: "\(values.count) 16-bit values do not fill \(rows) x \(columns)")
    }
    self.rows = rows
    self.columns = columns
    self.format = format
    self.values = values
  }

  /// Reads tensor `name` of `source`, which must be F16 or BF16, without widening it.
  init(source: any TensorSource, name: String, rows: Int, columns: Int, dtype: DType) throws {
    let format: Format
    switch dtype {
    case .f16: format = .f16
    case .bf16: format = .bf16
    default:
      throw DecoderError.invalidWeight(
        location: source.location, tensor: name, reason: "is \(dtype.rawValue), expected F16 or BF16")
    }
    let count = rows * columns
    let values = try source.withRawBytes(of: name) { raw -> [UInt16]? in
      guard raw.count == 2 * count else { return nil }
      return [UInt16](unsafeUninitializedCapacity: count) { buffer, initialized in
        if count > 0 {
          UnsafeMutableRawBufferPointer(buffer).copyMemory(from: raw)
          for index in 0..<count { buffer[index] = UInt16(littleEndian: buffer[index]) }
        }
        initialized = count
      }
    }
    guard let values else {
      throw DecoderError.invalidWeight(
        location: source.location, tensor: name, reason: "holds the wrong number of bytes for \(rows) x \(columns) \(dtype.rawValue)")
    }
    try self.init(rows: rows, columns: columns, format: format, values: values, location: source.location, name: name)
  }

  var isBF16: Int32 { format == .bf16 ? 1 : 0 }

  /// Rows `range` widened into `target` (`range.count * columns` floats).
  func widenRows(_ range: Range<Int>, into target: UnsafeMutablePointer<Float>) {
    values.withUnsafeBufferPointer { source in
      qk_half_to_float(source.baseAddress! + range.lowerBound * columns, target, range.count * columns, isBF16)
    }
  }

  /// The whole matrix as floats.
  public func widened() -> [Float] {
    [Float](unsafeUninitializedCapacity: values.count) { buffer, count in
      if !values.isEmpty { widenRows(0..<rows, into: buffer.baseAddress!) }
      count = values.count
    }
  }

  /// Rows `range` of a few-token product, for every input row, into `output` (token-major).
  func dotRows(
    _ range: Range<Int>, input: UnsafePointer<Float>, tokens: Int, into output: UnsafeMutablePointer<Float>
  ) {
    values.withUnsafeBufferPointer { weight in
      qk_half_rows_dot(
        weight.baseAddress!, isBF16, columns, range.lowerBound, range.upperBound, input, tokens, output, rows)
    }
  }

  /// `Y = X Wᵀ` widening `tileElements / columns` rows at a time into a buffer BLAS multiplies.
  func apply(
    _ input: UnsafeBufferPointer<Float>, tokens: Int, into output: UnsafeMutableBufferPointer<Float>,
    tileElements: Int
  ) throws {
    try LinearWeight.applyByTiles(
      input, tokens: tokens, rows: rows, columns: columns, into: output, tileElements: tileElements,
      parallelRebuild: false
    ) { range, target in widenRows(range, into: target) }
  }
}
