import QCompute
import QFormats

/// Reads a tensor as floats a block of whole rows at a time, dropping each block's mapped input
/// pages once widened, so a conversion's memory follows the block in hand, not the tensor or
/// the model.
public enum TensorRowBlocks {
  /// Floats widened at a time (16 MB): a large embedding never needs a full float copy.
  public static let blockElements = ConvertJob.blockElements

  /// Rows per block for rows of `columns` floats, about `blockElements` floats in all: at least
  /// one, and a multiple of `multiple` (rows a layout must see together, such as one attention
  /// head's) unless the tensor has fewer.
  static func rowsPerBlock(columns: Int, rows: Int, multiple: Int = 1, blockElements: Int = blockElements) -> Int {
    let step = max(multiple, 1)
    let fitting = max(1, blockElements / max(columns, 1)) / step * step
    return min(max(rows, 1), max(fitting, step))
  }

  /// Calls `body` with consecutive blocks of `rowsPerBlock` rows (the last may be shorter) of
  /// tensor `info`, widened to floats; a vector is one row.
  ///
  /// - Throws: `ConvertError.invalidReplacement` when the stored bytes are not the tensor's
  ///   size; whatever `body` throws.
  static func forEach(
    _ info: TensorInfo, in source: any TensorSource, rowsPerBlock: Int,
    _ body: (_ firstRow: Int, _ block: UnsafeBufferPointer<Float>) throws -> Void
  ) throws {
    let rows = info.shape.count >= 2 ? info.shape[0] : 1
    let columns = info.shape.count >= 2 ? info.shape.dropFirst().reduce(1, *) : info.elementCount
    guard rows > 0, columns > 0 else { return }
    let step = max(1, rowsPerBlock)
    let elementSize = info.dtype.byteSize
    var block = [Float](repeating: 0, count: min(rows, step) * columns)
    for firstRow in stride(from: 0, to: rows, by: step) {
      let count = min(step, rows - firstRow) * columns
      let byteRange = (firstRow * columns * elementSize)..<((firstRow * columns + count) * elementSize)
      try source.withRawBytes(of: info.name) { raw in
        guard raw.count == info.byteCount else {
          throw ConvertError.invalidReplacement(
            location: source.location, tensor: info.name, reason: "holds \(raw.count) bytes, not \(info.byteCount)")
        }
        let input = UnsafeRawBufferPointer(rebasing: raw[byteRange])
        block.withUnsafeMutableBufferPointer { buffer in
          // Widening is element-wise: the block's rows go to every core.
          forEachRowBlock(rows: count / columns, elementsPerRow: columns) { rows in
            let elements = (rows.lowerBound * columns)..<(rows.upperBound * columns)
            DTypeConversion.widen(
              UnsafeRawBufferPointer(
                rebasing: input[(elements.lowerBound * elementSize)..<(elements.upperBound * elementSize)]),
              from: info.dtype, into: UnsafeMutableBufferPointer(rebasing: buffer[elements]))
          }
        }
      }
      ConvertJob.releasePages(of: info.name, byteRange: byteRange, in: source)
      try block.withUnsafeBufferPointer { try body(firstRow, UnsafeBufferPointer(rebasing: $0[0..<count])) }
    }
  }
}
