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
        guard let codeStart = codeBuffer.baseAddress, let scaleStart = scaleBuffer.baseAddress,
          let offsetStart = offsetBuffer.baseAddress, let source = weights.baseAddress
        else { return }
        let codeBase = SendableMutablePointer(codeStart)
        let scaleBase = SendableMutablePointer(scaleStart)
        let offsetBase = SendableMutablePointer(offsetStart)
        forEachRowBlock(rows: rows, elementsPerRow: columns) { rowRange in
          let (codes, scales, offsets) = (codeBase.pointer, scaleBase.pointer, offsetBase.pointer)
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

/// The smallest and largest element (for finite values the same as C++'s std::min/std::max over
/// the group; only the sign of a zero edge may differ, which no grid depends on).
@inline(__always)
func minMax(_ values: UnsafeBufferPointer<Float>) -> (min: Float, max: Float) {
  var low = Float.infinity
  var high = -Float.infinity
  guard let base = values.baseAddress else { return (low, high) }
  let count = values.count
  var index = 0
  if count >= 16 {
    var lows = (SIMD8<Float>(repeating: .infinity), SIMD8<Float>(repeating: .infinity))
    var highs = (SIMD8<Float>(repeating: -.infinity), SIMD8<Float>(repeating: -.infinity))
    while index &+ 16 <= count {
      let first = UnsafeRawPointer(base + index).loadUnaligned(as: SIMD8<Float>.self)
      let second = UnsafeRawPointer(base + (index &+ 8)).loadUnaligned(as: SIMD8<Float>.self)
      lows.0.replace(with: first, where: first .< lows.0)
      lows.1.replace(with: second, where: second .< lows.1)
      highs.0.replace(with: first, where: highs.0 .< first)
      highs.1.replace(with: second, where: highs.1 .< second)
      index &+= 16
    }
    lows.0.replace(with: lows.1, where: lows.1 .< lows.0)
    highs.0.replace(with: highs.1, where: highs.0 .< highs.1)
    low = lows.0.min()
    high = highs.0.max()
  }
  while index < count {
    let value = base[index]
    high = high < value ? value : high
    low = value < low ? value : low
    index &+= 1
  }
  return (low, high)
}
