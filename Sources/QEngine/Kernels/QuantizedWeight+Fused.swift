import Dispatch
import Foundation

/// Eight consecutive codes of a packed row turned into floats, for the fused product.
///
/// Codes of widths 2, 3 and 4 are not shifted down: each half of eight codes (`4 * bits` bits)
/// is broadcast to four lanes and masked in place, so lane `i` holds `q << (bits * (i % 4))`.
/// The activations are scaled by `2^-(bits * (i % 4))` once per product to match, which is
/// exact, so the inner loop is a load, a mask, a conversion and a multiply-add. The masks are
/// literals in each function: a `static let` would be a lazily made global, checked per call.
protocol _FusedCodeChunk {
  /// Bytes holding eight codes.
  static var bytes: Int { get }
  /// The power of two lane `i % 4` of a chunk carries, as a shift.
  static var laneShift: Int { get }
  static func floats(at source: UnsafePointer<UInt8>) -> SIMD8<Float>
}

enum _TwoBitChunk: _FusedCodeChunk {
  static var bytes: Int { 2 }
  static var laneShift: Int { 2 }

  static func floats(at source: UnsafePointer<UInt8>) -> SIMD8<Float> {
    let low = Int32(source[0])
    let high = Int32(source[1])
    let masks = SIMD8<Int32>(3, 3 << 2, 3 << 4, 3 << 6, 3, 3 << 2, 3 << 4, 3 << 6)
    return SIMD8<Float>(
      SIMD8(lowHalf: SIMD4(repeating: low), highHalf: SIMD4(repeating: high)) & masks)
  }
}

enum _ThreeBitChunk: _FusedCodeChunk {
  static var bytes: Int { 3 }
  static var laneShift: Int { 3 }

  static func floats(at source: UnsafePointer<UInt8>) -> SIMD8<Float> {
    let word = Int32(source[0]) | Int32(source[1]) << 8 | Int32(source[2]) << 16
    let masks = SIMD8<Int32>(7, 7 << 3, 7 << 6, 7 << 9, 7, 7 << 3, 7 << 6, 7 << 9)
    return SIMD8<Float>(
      SIMD8(lowHalf: SIMD4(repeating: word & 0xFFF), highHalf: SIMD4(repeating: word >> 12)) & masks)
  }
}

enum _FourBitChunk: _FusedCodeChunk {
  static var bytes: Int { 4 }
  static var laneShift: Int { 4 }

  static func floats(at source: UnsafePointer<UInt8>) -> SIMD8<Float> {
    let word = UInt32(littleEndian: UnsafeRawPointer(source).loadUnaligned(as: UInt32.self))
    let low = Int32(truncatingIfNeeded: word & 0xFFFF)
    let high = Int32(truncatingIfNeeded: word >> 16)
    let masks = SIMD8<Int32>(0xF, 0xF0, 0xF00, 0xF000, 0xF, 0xF0, 0xF00, 0xF000)
    return SIMD8<Float>(
      SIMD8(lowHalf: SIMD4(repeating: low), highHalf: SIMD4(repeating: high)) & masks)
  }
}

enum _EightBitChunk: _FusedCodeChunk {
  static var bytes: Int { 8 }
  static var laneShift: Int { 0 }

  static func floats(at source: UnsafePointer<UInt8>) -> SIMD8<Float> {
    let codes = UnsafeRawPointer(source).loadUnaligned(as: SIMD8<UInt8>.self)
    return SIMD8<Float>(SIMD8<Int32>(truncatingIfNeeded: codes))
  }
}

/// One weight's view of a fused product's input, owned by the call that prepared it.
struct _FusedInput: Sendable {
  let scaled: _SendablePointer<Float>
  let groupSums: _SendablePointer<Float>

  func deallocate() {
    scaled.base.deallocate()
    groupSums.base.deallocate()
  }
}

/// A pointer handed to concurrent row blocks that each write disjoint outputs.
struct _SendablePointer<Pointee>: @unchecked Sendable {
  let base: UnsafeMutablePointer<Pointee>
}

extension QuantizedWeight {
  /// `Y = X Wᵀ` for a few rows of `X` straight from the packed codes on float activations,
  /// never building a row of floats: each group's dot product with the codes is scaled once,
  /// and the group's zero or bias term comes from the group's sum of `x`, computed once per
  /// input row. Exact up to float rounding, whatever `quantizesActivations` says.
  ///
  /// Output rows are split across the cores. `input` is `tokens * columns` floats and `output`
  /// `tokens * rows`, token-major, as in `apply`.
  func applyFused(
    _ input: UnsafeBufferPointer<Float>, tokens: Int, into output: UnsafeMutableBufferPointer<Float>
  ) {
    Self.applyFused([(self, output)], to: input, tokens: tokens)
  }

  /// The fused product of several weights with the same input (a layer's query, key and value,
  /// or its gate and up projections) in one parallel region (`_RowProduct.run`).
  static func applyFused(
    _ products: [(weight: QuantizedWeight, output: UnsafeMutableBufferPointer<Float>)],
    to input: UnsafeBufferPointer<Float>, tokens: Int
  ) {
    guard tokens > 0 else { return }
    var float = products.map { $0.weight }
    for index in float.indices { float[index].quantizesActivations = false }
    _RowProduct.run(
      zip(float, products).map { weight, product in
        LinearWeight.quantized(weight).fewTokenProduct(input, tokens: tokens, into: product.output)
      })
  }

  /// Per input row: `x` scaled to meet the unshifted codes, and the sum of `x` over each group.
  func prepareFusedInput(_ input: UnsafeBufferPointer<Float>, tokens: Int) -> _FusedInput {
    let groups = groupsPerRow
    let layout = fusedLayout
    let inputBase = input.baseAddress!
    let scaled = UnsafeMutablePointer<Float>.allocate(capacity: tokens * columns)
    let groupSums = UnsafeMutablePointer<Float>.allocate(capacity: tokens * groups)
    for token in 0..<tokens {
      let x = inputBase + token &* columns
      let target = scaled + token &* columns
      for index in 0..<columns {
        let shift = layout.shift(ofColumn: index)
        target[index] = x[index] * Float(sign: .plus, exponent: -shift, significand: 1)
      }
      for group in 0..<groups {
        var sum: Float = 0
        let start = group &* groupSize
        for index in start..<(start &+ groupSize) { sum += x[index] }
        groupSums[token &* groups &+ group] = sum
      }
    }
    return _FusedInput(scaled: _SendablePointer(base: scaled), groupSums: _SendablePointer(base: groupSums))
  }

  /// Rows `range` of the fused product, for every input row, into `output` (token-major).
  func fusedRows(
    _ range: Range<Int>, tokens: Int, scaledInput: UnsafeMutablePointer<Float>,
    groupSums: UnsafeMutablePointer<Float>, into output: UnsafeMutablePointer<Float>
  ) {
    switch fusedLayout {
    case .unaligned:
      fusedRowsUnaligned(range, tokens: tokens, input: scaledInput, groupSums: groupSums, into: output)
    case .twoBitWide:
      fusedRowsTwoBitWide(range, tokens: tokens, scaledInput, groupSums, output)
    case .chunks:
      switch bits {
      case 2: fusedRows(range, tokens: tokens, scaledInput, groupSums, output, chunk: _TwoBitChunk.self)
      case 3: fusedRows(range, tokens: tokens, scaledInput, groupSums, output, chunk: _ThreeBitChunk.self)
      case 4: fusedRows(range, tokens: tokens, scaledInput, groupSums, output, chunk: _FourBitChunk.self)
      default: fusedRows(range, tokens: tokens, scaledInput, groupSums, output, chunk: _EightBitChunk.self)
      }
    }
  }

  /// How the fused product walks a row's codes, which fixes how the activations are scaled.
  enum _FusedLayout {
    /// Groups of a multiple of 16 two-bit codes: 16 codes (4 bytes) at a time; the first two
    /// bytes are masked in place (code `i` carries `2^(2i)`), the last two after a shift by 16
    /// bits (code `8 + i` carrying `2^(2i)` too), which keeps every lane's value positive.
    case twoBitWide
    /// Groups of a multiple of eight codes: eight at a time, code `i` carrying `2^(bits * (i % 4))`.
    case chunks(laneShift: Int)
    /// Other group sizes: codes unpacked to bytes, activations as they are.
    case unaligned

    func shift(ofColumn column: Int) -> Int {
      switch self {
      case .twoBitWide: return 2 &* (column & 7)
      case .chunks(let laneShift): return laneShift &* (column & 3)
      case .unaligned: return 0
      }
    }
  }

  var fusedLayout: _FusedLayout {
    if bits == 2 && groupSize % 16 == 0 { return .twoBitWide }
    guard groupSize % 8 == 0 else { return .unaligned }
    switch bits {
    case 2: return .chunks(laneShift: _TwoBitChunk.laneShift)
    case 3: return .chunks(laneShift: _ThreeBitChunk.laneShift)
    case 4: return .chunks(laneShift: _FourBitChunk.laneShift)
    default: return .chunks(laneShift: _EightBitChunk.laneShift)
    }
  }

  /// Two-bit codes in groups of a multiple of 16: one 32-bit load, broadcast to eight lanes,
  /// feeds 16 multiply-adds, the first eight codes masked in place and the last eight after a
  /// shift by 16 bits. Rows go in pairs that share each load of `x` and keep four independent
  /// sums in flight; a group's scale is applied to a vector, and the offset terms are summed
  /// apart, so nothing is reduced to a scalar until the row's end.
  private func fusedRowsTwoBitWide(
    _ range: Range<Int>, tokens: Int, _ input: UnsafeMutablePointer<Float>,
    _ groupSums: UnsafeMutablePointer<Float>, _ output: UnsafeMutablePointer<Float>
  ) {
    let columns = self.columns
    let groups = groupsPerRow
    let wordsPerGroup = groupSize / 16
    let bytesPerRow = self.bytesPerRow
    let mask = SIMD8<Int32>(3, 3 << 2, 3 << 4, 3 << 6, 3 << 8, 3 << 10, 3 << 12, 3 << 14)
    codes.withUnsafeBufferPointer { codeBuffer in
      scales.withUnsafeBufferPointer { scaleBuffer in
        let codeBase = UnsafeRawPointer(codeBuffer.baseAddress!)
        let scaleBase = scaleBuffer.baseAddress!
        var first = range.lowerBound
        while first < range.upperBound {
          // An odd last row is computed as its own pair and written once.
          let second = first &+ 1 < range.upperBound ? first &+ 1 : first
          let codes0 = codeBase + first &* bytesPerRow
          let codes1 = codeBase + second &* bytesPerRow
          let scales0 = scaleBase + first &* groups
          let scales1 = scaleBase + second &* groups
          for token in 0..<tokens {
            let x = UnsafeRawPointer(input + token &* columns)
            var total0 = SIMD8<Float>()
            var total1 = SIMD8<Float>()
            var word = 0
            for group in 0..<groups {
              var low0 = SIMD8<Float>()
              var high0 = SIMD8<Float>()
              var low1 = SIMD8<Float>()
              var high1 = SIMD8<Float>()
              let end = word &+ wordsPerGroup
              while word < end {
                let bits0 = SIMD8<Int32>(
                  repeating: Int32(littleEndian: codes0.loadUnaligned(fromByteOffset: word &* 4, as: Int32.self)))
                let bits1 = SIMD8<Int32>(
                  repeating: Int32(littleEndian: codes1.loadUnaligned(fromByteOffset: word &* 4, as: Int32.self)))
                let xLow = x.loadUnaligned(fromByteOffset: word &* 64, as: SIMD8<Float>.self)
                let xHigh = x.loadUnaligned(fromByteOffset: word &* 64 &+ 32, as: SIMD8<Float>.self)
                low0 += SIMD8<Float>(bits0 & mask) * xLow
                high0 += SIMD8<Float>((bits0 &>> 16) & mask) * xHigh
                low1 += SIMD8<Float>(bits1 & mask) * xLow
                high1 += SIMD8<Float>((bits1 &>> 16) & mask) * xHigh
                word &+= 1
              }
              total0 += (low0 + high0) * SIMD8(repeating: scales0[group])
              total1 += (low1 + high1) * SIMD8(repeating: scales1[group])
            }
            storeRowPair(
              total0, total1, rows: first, second, token: token, groupSums: groupSums, into: output)
          }
          first = second &+ 1
        }
      }
    }
  }

  /// Groups of a multiple of eight codes start on a byte, so eight codes at a time are read
  /// from `bits` bytes. Rows go in pairs that share each load of `x`, with two accumulators per
  /// row; as in the two-bit kernel, scales are applied to vectors and offsets summed apart.
  private func fusedRows<Chunk: _FusedCodeChunk>(
    _ range: Range<Int>, tokens: Int, _ input: UnsafeMutablePointer<Float>,
    _ groupSums: UnsafeMutablePointer<Float>, _ output: UnsafeMutablePointer<Float>, chunk: Chunk.Type
  ) {
    let columns = self.columns
    let groups = groupsPerRow
    let chunksPerGroup = groupSize / 8
    let groupBytes = chunksPerGroup &* Chunk.bytes
    let bytesPerRow = self.bytesPerRow
    codes.withUnsafeBufferPointer { codeBuffer in
      scales.withUnsafeBufferPointer { scaleBuffer in
        let codeBase = codeBuffer.baseAddress!
        let scaleBase = scaleBuffer.baseAddress!
        var first = range.lowerBound
        while first < range.upperBound {
          // An odd last row is computed as its own pair and written once.
          let second = first &+ 1 < range.upperBound ? first &+ 1 : first
          let codes0 = codeBase + first &* bytesPerRow
          let codes1 = codeBase + second &* bytesPerRow
          let scales0 = scaleBase + first &* groups
          let scales1 = scaleBase + second &* groups
          for token in 0..<tokens {
            let x = input + token &* columns
            var total0 = SIMD8<Float>()
            var total1 = SIMD8<Float>()
            for group in 0..<groups {
              var source0 = codes0 + group &* groupBytes
              var source1 = codes1 + group &* groupBytes
              var xs = x + group &* groupSize
              var even0 = SIMD8<Float>()
              var odd0 = SIMD8<Float>()
              var even1 = SIMD8<Float>()
              var odd1 = SIMD8<Float>()
              var remaining = chunksPerGroup
              while remaining >= 2 {
                let xEven = UnsafeRawPointer(xs).loadUnaligned(as: SIMD8<Float>.self)
                let xOdd = UnsafeRawPointer(xs + 8).loadUnaligned(as: SIMD8<Float>.self)
                even0 += Chunk.floats(at: source0) * xEven
                odd0 += Chunk.floats(at: source0 + Chunk.bytes) * xOdd
                even1 += Chunk.floats(at: source1) * xEven
                odd1 += Chunk.floats(at: source1 + Chunk.bytes) * xOdd
                source0 += 2 &* Chunk.bytes
                source1 += 2 &* Chunk.bytes
                xs += 16
                remaining &-= 2
              }
              if remaining == 1 {
                let xEven = UnsafeRawPointer(xs).loadUnaligned(as: SIMD8<Float>.self)
                even0 += Chunk.floats(at: source0) * xEven
                even1 += Chunk.floats(at: source1) * xEven
              }
              total0 += (even0 + odd0) * SIMD8(repeating: scales0[group])
              total1 += (even1 + odd1) * SIMD8(repeating: scales1[group])
            }
            storeRowPair(
              total0, total1, rows: first, second, token: token, groupSums: groupSums, into: output)
          }
          first = second &+ 1
        }
      }
    }
  }

  /// Writes the outputs of a row pair for one input row: each vector total reduced, plus the
  /// row's offset term. `second == first` marks an odd last row, written once.
  @inline(__always)
  func storeRowPair(
    _ total0: SIMD8<Float>, _ total1: SIMD8<Float>, rows first: Int, _ second: Int, token: Int,
    groupSums: UnsafeMutablePointer<Float>, into output: UnsafeMutablePointer<Float>
  ) {
    let sums = groupSums + token &* groupsPerRow
    let half0 = total0.lowHalf + total0.highHalf
    output[token &* rows &+ first] = half0.sum() + offsetTerm(row: first, groupSums: sums)
    if second != first {
      let half1 = total1.lowHalf + total1.highHalf
      output[token &* rows &+ second] = half1.sum() + offsetTerm(row: second, groupSums: sums)
    }
  }

  /// The offset part of a row's product: each group's zero (or bias) times its sum of `x`.
  @inline(__always)
  func offsetTerm(row: Int, groupSums: UnsafeMutablePointer<Float>) -> Float {
    let groups = groupsPerRow
    let bias = offsetIsBias
    return scales.withUnsafeBufferPointer { scaleBuffer in
      offsets.withUnsafeBufferPointer { offsetBuffer in
        let rowScales = scaleBuffer.baseAddress! + row &* groups
        let rowOffsets = offsetBuffer.baseAddress! + row &* groups
        var term: Float = 0
        for group in 0..<groups {
          term += (bias ? rowOffsets[group] : -rowScales[group] * rowOffsets[group]) * groupSums[group]
        }
        return term
      }
    }
  }

  /// Any group size: a row's codes are unpacked to bytes once, then each group's dot product
  /// runs over them, for every input row.
  private func fusedRowsUnaligned(
    _ range: Range<Int>, tokens: Int, input: UnsafeMutablePointer<Float>,
    groupSums: UnsafeMutablePointer<Float>, into output: UnsafeMutablePointer<Float>
  ) {
    let columns = self.columns
    let rows = self.rows
    let groups = groupsPerRow
    let group = groupSize
    let scratch = UnsafeMutablePointer<UInt8>.allocate(capacity: columns)
    defer { scratch.deallocate() }
    codes.withUnsafeBufferPointer { codeBuffer in
      scales.withUnsafeBufferPointer { scaleBuffer in
        offsets.withUnsafeBufferPointer { offsetBuffer in
          for row in range {
            Self.unpack(codeBuffer.baseAddress! + row &* bytesPerRow, count: columns, bits: bits, into: scratch)
            for token in 0..<tokens {
              let x = input + token &* columns
              var total: Float = 0
              for groupIndex in 0..<groups {
                let start = groupIndex &* group
                var dot: Float = 0
                for index in start..<(start &+ group) { dot += Float(scratch[index]) * x[index] }
                let scale = scaleBuffer[row &* groups &+ groupIndex]
                let offset = offsetBuffer[row &* groups &+ groupIndex]
                let sum = groupSums[token &* groups &+ groupIndex]
                total += scale * dot + (offsetIsBias ? offset : -scale * offset) * sum
              }
              output[token &* rows &+ row] = total
            }
          }
        }
      }
    }
  }
}
