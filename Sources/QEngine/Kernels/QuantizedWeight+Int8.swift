import CKernels

/// A decoding step's input quantized to int8 for the integer dot products of `qk_lowbit_rows_dot`,
/// owned by the product that prepared it.
struct _Int8Input: Sendable {
  let quantized: _SendablePointer<Int8>
  let blockScales: _SendablePointer<Float>
  let groupSums: _SendablePointer<Float>

  func deallocate() {
    quantized.base.deallocate()
    blockScales.base.deallocate()
    groupSums.base.deallocate()
  }
}

extension QuantizedWeight {
  /// Whether a decoding step can run on int8 activations: codes of 2, 4 or 8 bits (whole codes
  /// per byte) in groups of a multiple of 32, so that each block of 32 activations sharing one
  /// int8 scale lies in one group.
  var supportsInt8Activations: Bool { [2, 4, 8].contains(bits) && groupSize % 32 == 0 }

  /// The few-token product as `_RowProduct.run` takes it: on int8 activations when the weight
  /// asks for them and supports them, on float activations (`fusedRows`) otherwise.
  func fewTokenProduct(
    _ input: UnsafeBufferPointer<Float>, tokens: Int, into output: _SendablePointer<Float>
  ) -> _RowProduct {
    let work = rows * columns * tokens
    if quantizesActivations && supportsInt8Activations {
      let prepared = prepareInt8Input(input, tokens: tokens)
      return _RowProduct(
        rows: rows, work: work,
        body: { range in self.int8Rows(range, tokens: tokens, input: prepared, into: output.base) },
        release: { prepared.deallocate() })
    }
    let prepared = prepareFusedInput(input, tokens: tokens)
    return _RowProduct(
      rows: rows, work: work,
      body: { range in
        self.fusedRows(
          range, tokens: tokens, scaledInput: prepared.scaled.base, groupSums: prepared.groupSums.base,
          into: output.base)
      },
      release: { prepared.deallocate() })
  }

  /// Per input row: the activations rounded to int8 in blocks of 32 (`qk_quantize_activations`:
  /// each within half its block's scale, `max|x| / 254`), and each group's sum of the rounded
  /// activations, which the offset terms use. The product is then exactly `sum_c w_c * x̂_c`
  /// for the dequantized weights `w` and rounded activations `x̂`, so it differs from the float
  /// product by at most `sum_c |w_c| * scale_b(c) / 2` (plus float rounding), as ggml's products
  /// on Q8 activations do.
  func prepareInt8Input(_ input: UnsafeBufferPointer<Float>, tokens: Int) -> _Int8Input {
    let groups = groupsPerRow
    let blocks = columns / 32
    let blocksPerGroup = groupSize / 32
    let inputBase = input.baseAddress!
    let quantized = UnsafeMutablePointer<Int8>.allocate(capacity: tokens * columns)
    let blockScales = UnsafeMutablePointer<Float>.allocate(capacity: max(1, tokens * blocks))
    let groupSums = UnsafeMutablePointer<Float>.allocate(capacity: max(1, tokens * groups))
    let blockSums = UnsafeMutablePointer<Float>.allocate(capacity: max(1, blocks))
    defer { blockSums.deallocate() }
    for token in 0..<tokens {
      qk_quantize_activations(
        inputBase + token &* columns, columns, Int32(bits), quantized + token &* columns,
        blockScales + token &* blocks, blockSums)
      for group in 0..<groups {
        var sum: Float = 0
        for block in (group &* blocksPerGroup)..<((group &+ 1) &* blocksPerGroup) { sum += blockSums[block] }
        groupSums[token &* groups &+ group] = sum
      }
    }
    return _Int8Input(
      quantized: _SendablePointer(base: quantized), blockScales: _SendablePointer(base: blockScales),
      groupSums: _SendablePointer(base: groupSums))
  }

  /// Rows `range` of the product on int8 activations, for every input row, into `output`.
  func int8Rows(
    _ range: Range<Int>, tokens: Int, input: _Int8Input, into output: UnsafeMutablePointer<Float>
  ) {
    codes.withUnsafeBufferPointer { codeBuffer in
      scales.withUnsafeBufferPointer { scaleBuffer in
        offsets.withUnsafeBufferPointer { offsetBuffer in
          qk_lowbit_rows_dot(
            codeBuffer.baseAddress!, bytesPerRow, Int32(bits), columns, groupSize, scaleBuffer.baseAddress!,
            offsetBuffer.baseAddress!, offsetIsBias ? 1 : 0, range.lowerBound, range.upperBound,
            input.quantized.base, input.blockScales.base, input.groupSums.base, tokens, output, rows)
        }
      }
    }
  }
}
