/// Codes, scales and offsets produced by quantizing every group of a matrix independently.
struct GroupedResult {
  var codes: [UInt8]
  var scales: [Float]
  var offsets: [Float]
}

/// Quantizes each group of each row with `quantizeGroup`, rows in parallel for large matrices.
///
/// `quantizeGroup` receives one group's weights and the matching slice of codes to fill, and
/// returns that group's scale and offset. It must be safe to call concurrently.
func quantizeGroups(
  _ weights: UnsafeBufferPointer<Float>, rows: Int, columns: Int, groupLength: Int,
  _ quantizeGroup: (UnsafeBufferPointer<Float>, UnsafeMutableBufferPointer<UInt8>) -> (
    scale: Float, offset: Float
  )
) -> GroupedResult {
  let groupsPerRow = groupLength == 0 ? 0 : columns / groupLength
  var codes = [UInt8](repeating: 0, count: rows * columns)
  var scales = [Float](repeating: 0, count: rows * groupsPerRow)
  var offsets = [Float](repeating: 0, count: rows * groupsPerRow)
  guard groupsPerRow > 0 else { return GroupedResult(codes: codes, scales: scales, offsets: offsets) }
  codes.withUnsafeMutableBufferPointer { codeBuffer in
    scales.withUnsafeMutableBufferPointer { scaleBuffer in
      offsets.withUnsafeMutableBufferPointer { offsetBuffer in
        let codeBase = SendableMutablePointer(codeBuffer.baseAddress)
        let scaleBase = SendableMutablePointer(scaleBuffer.baseAddress)
        let offsetBase = SendableMutablePointer(offsetBuffer.baseAddress)
        forEachRowBlock(rows: rows, elementsPerRow: columns) { rowRange in
          guard let codes = codeBase.pointer, let scales = scaleBase.pointer,
            let offsets = offsetBase.pointer, let source = weights.baseAddress
          else { return }
          for row in rowRange {
            for group in 0..<groupsPerRow {
              let start = row &* columns &+ group &* groupLength
              let (scale, offset) = quantizeGroup(
                UnsafeBufferPointer(start: source + start, count: groupLength),
                UnsafeMutableBufferPointer(start: codes + start, count: groupLength))
              scales[row &* groupsPerRow &+ group] = scale
              offsets[row &* groupsPerRow &+ group] = offset
            }
          }
        }
      }
    }
  }
  return GroupedResult(codes: codes, scales: scales, offsets: offsets)
}

/// The smallest and largest element, compared as C++'s std::min/std::max do.
@inline(__always)
func minMax(_ values: UnsafeBufferPointer<Float>) -> (min: Float, max: Float) {
  var low = Float.infinity
  var high = -Float.infinity
  for value in values {
    high = high < value ? value : high
    low = value < low ? value : low
  }
  return (low, high)
}
