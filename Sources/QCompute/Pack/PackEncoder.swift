import QFormats

/// One weight packed: its description, its companion tensors and the matrix they encode.
public struct PackedTensor: Sendable {
  public var name: String
  public var description: PackDescription
  /// Companion tensors in `description.companions(of:)` order, each with its bytes.
  public var companions: [(info: TensorInfo, bytes: [UInt8])]
  /// The quantized matrix as stored: scales and float offsets rounded to the scale dtype, so
  /// `matrix.dequantize()` is exactly what a reader reconstructs.
  public var matrix: QuantizedMatrix

  /// The `__metadata__` entry describing this tensor.
  public var metadataEntry: (key: String, value: String) {
    (PackDescription.keyPrefix + name, description.jsonString())
  }
}

/// Quantizes weights into qpack companion tensors.
public enum PackEncoder {
  /// The companions `info` gets under `spec`, computed without reading any data, so a streaming
  /// writer can lay out its header first.
  public static func companions(of info: TensorInfo, spec: PackSpec, location: String) throws(PackError)
    -> (description: PackDescription, companions: [TensorInfo])
  {
    let description = try PackDescription(for: info, spec: spec, location: location)
    return (description, description.companions(of: info.name))
  }

  /// Finds the first NaN or infinity, as coordinates in the tensor's shape.
  public static func firstNonFinite(_ weights: UnsafeBufferPointer<Float>, shape: [Int]) -> (index: [Int], value: Float)? {
    guard !allFinite(weights) else { return nil }
    for position in 0..<weights.count where !weights[position].isFinite {
      var coordinates = [Int](repeating: 0, count: shape.count)
      var rest = position
      for axis in stride(from: shape.count - 1, through: 0, by: -1) where shape[axis] > 0 {
        coordinates[axis] = rest % shape[axis]
        rest /= shape[axis]
      }
      return (coordinates, weights[position])
    }
    return nil
  }

  /// Whether no element is NaN or infinite: the largest magnitude bit pattern stays below the
  /// exponent-all-ones pattern. A vector pass, so the common all-finite case costs little.
  static func allFinite(_ weights: UnsafeBufferPointer<Float>) -> Bool {
    let count = weights.count
    guard let base = weights.baseAddress, count > 0 else { return true }
    let raw = UnsafeRawPointer(base)
    let mask = SIMD8<UInt32>(repeating: 0x7FFF_FFFF)
    var first = SIMD8<UInt32>.zero
    var second = SIMD8<UInt32>.zero
    var index = 0
    while index &+ 16 <= count {
      first = pointwiseMax(first, raw.loadUnaligned(fromByteOffset: index &* 4, as: SIMD8<UInt32>.self) & mask)
      second = pointwiseMax(second, raw.loadUnaligned(fromByteOffset: (index &+ 8) &* 4, as: SIMD8<UInt32>.self) & mask)
      index &+= 16
    }
    var largest = pointwiseMax(first, second).max()
    while index < count {
      largest = max(largest, base[index].bitPattern & 0x7FFF_FFFF)
      index &+= 1
    }
    return largest < 0x7F80_0000
  }

  /// Quantizes one weight (widened to floats, row-major) into its companions.
  ///
  /// Scales and offsets are stored in the spec's scale dtype, or in F32 when that dtype cannot
  /// hold them (`description.scaleDType` says which).
  /// - Throws: `PackError.cannotPack` when the spec does not apply, `.nonFinite` for NaN or
  ///   infinity in the weight, `.dequantizesNonFinite` when even F32 scales overflow.
  public static func pack(
    _ weights: UnsafeBufferPointer<Float>, info: TensorInfo, spec: PackSpec, location: String
  ) throws(PackError) -> PackedTensor {
    try widening(spec, dtype: info.dtype) { (spec, limit) throws(PackError) in
      let (description, infos) = try companions(of: info, spec: spec, location: location)
      let matrix = try quantize(weights, info: info, spec: spec, description: description, limit: limit, location: location)
      return try assemble(info: info, companions: infos, description: description, matrix: matrix, location: location)
    }
  }

  /// Runs `body` with `spec`, and again with F32 scales when the spec's scale dtype cannot hold
  /// the tensor: its scales, offsets or dequantized values overflow (a weight of 7e4 has a bias
  /// F16 cannot store; an F16 scale near 65504 times a code can exceed F16). `body` gets the
  /// largest magnitude a dequantized value may have: the original dtype's range at first, and
  /// float32's last, for grids whose own reach (not the scales' rounding) goes past the
  /// original range. The returned description records the scale dtype used.
  ///
  /// - Throws: what `body` throws; `.dequantizesNonFinite` only when float32 overflows too.
  static func widening<R>(
    _ spec: PackSpec, dtype: DType, _ body: (PackSpec, Float) throws(PackError) -> R
  ) throws(PackError) -> R {
    var wide = spec
    wide.scaleDType = .f32
    let held = largestFinite(in: dtype)
    var attempts = [(spec, held)]
    if spec.scaleDType != .f32 { attempts.append((wide, held)) }
    if held < .greatestFiniteMagnitude { attempts.append((wide, .greatestFiniteMagnitude)) }
    for (attempt, limit) in attempts.dropLast() {
      do {
        return try body(attempt, limit)
      } catch {
        guard case .dequantizesNonFinite = error else { throw error }
      }
    }
    let (attempt, limit) = attempts[attempts.count - 1]
    return try body(attempt, limit)
  }

  /// The largest magnitude a dequantized value may have and still round to a finite `dtype`.
  public static func largestFinite(in dtype: DType) -> Float {
    switch dtype {
    case .f16: Float(65520).nextDown
    case .bf16: Float(bitPattern: 0x7F7F_0000)
    default: .greatestFiniteMagnitude
    }
  }

  /// Checks that every element of `matrix`, dequantized in float32 as a reader does, is at most
  /// `limit` in magnitude (and not NaN): F16 rounding of a scale near 65504 can overflow once
  /// multiplied by the code even when the scale itself is finite.
  ///
  /// - Throws: `PackError.dequantizesNonFinite` naming the first element that does not.
  static func checkDequantized(
    _ matrix: QuantizedMatrix, description: PackDescription, limit: Float, tensor: String, location: String
  ) throws(PackError) {
    if let found = matrix.firstDequantized(beyond: limit) {
      throw .dequantizesNonFinite(
        location: location, tensor: tensor, scaleDType: description.scaleDType, index: found.index, value: found.value)
    }
  }

  /// The quantized matrix `pack` would store for one weight, with its scales and offsets already
  /// rounded through the stored scale dtype: what a reader of the pack dequantizes. Training that
  /// holds a tensor frozen at its packed values starts from this.
  ///
  /// - Throws: as `pack`.
  public static func quantize(
    _ weights: UnsafeBufferPointer<Float>, info: TensorInfo, spec: PackSpec, location: String
  ) throws(PackError) -> QuantizedMatrix {
    try widening(spec, dtype: info.dtype) { (spec, limit) throws(PackError) in
      let (description, _) = try companions(of: info, spec: spec, location: location)
      return try quantize(weights, info: info, spec: spec, description: description, limit: limit, location: location)
    }
  }

  /// `quantize` with the layout `companions` already worked out for this spec.
  static func quantize(
    _ weights: UnsafeBufferPointer<Float>, info: TensorInfo, spec: PackSpec, description: PackDescription,
    limit: Float, location: String
  ) throws(PackError) -> QuantizedMatrix {
    guard weights.count == info.elementCount else {
      throw .cannotPack(
        location: location, tensor: info.name,
        reason: "\(weights.count) values were given for \(info.elementCount) elements")
    }
    if let (index, value) = firstNonFinite(weights, shape: info.shape) {
      throw .nonFinite(location: location, tensor: info.name, index: index, value: value)
    }
    let rows = description.rows
    let columns = description.columns
    var matrix: QuantizedMatrix
    do {
      switch (spec.grid, spec.method) {
      case (.affine, .rtn):
        matrix = try AffineQuantizer.quantize(weights, rows: rows, columns: columns, bits: spec.bits, groupSize: spec.groupSize)
      case (.affine, .clip):
        matrix = try ClipSearchQuantizer.quantize(weights, rows: rows, columns: columns, bits: spec.bits, groupSize: spec.groupSize)
      case (.affine, .hqq):
        matrix = try HQQQuantizer.quantize(weights, rows: rows, columns: columns, bits: spec.bits, groupSize: spec.groupSize)
      case (.symmetric, _):
        matrix = try SymmetricQuantizer.quantize(
          weights, rows: rows, columns: columns, bits: spec.bits, groupSize: spec.groupSize,
          variant: spec.embeddingPolicy ? .embedding : .signed)
      case (.bilevel, _):
        matrix = try BilevelQuantizer.quantize(
          weights, rows: rows, columns: columns,
          configuration: .init(bits: spec.bits, groupSize: description.groupSize, scaleGroupSize: spec.scaleGroupSize))
      default:
        throw QuantizeError.unsupportedBits(quantizer: spec.method.rawValue, bits: spec.bits)
      }
    } catch {
      throw .cannotPack(location: location, tensor: info.name, reason: "\(error)")
    }

    // Round what is stored in the scale dtype, so the matrix is what a reader will see.
    let scaleDType = description.scaleDType
    if description.grid != .bilevel {
      matrix.scales = roundTrip(matrix.scales, through: scaleDType)
    }
    switch description.zero {
    case .bias, .float: matrix.offsets = roundTrip(matrix.offsets, through: scaleDType)
    case .fixed:
      let zeroPoint = Float(description.zeroPoint ?? 0)
      guard matrix.offsets.allSatisfy({ $0 == zeroPoint }) else {
        throw .cannotPack(location: location, tensor: info.name, reason: "the symmetric grid did not use zero point \(zeroPoint)")
      }
    case .int: break
    }
    try checkDequantized(matrix, description: description, limit: limit, tensor: info.name, location: location)
    return matrix
  }

  /// The pack entry of a quantized matrix: each companion's bytes as `description` lays them out,
  /// checked against the companion's declared size.
  static func assemble(
    info: TensorInfo, companions infos: [TensorInfo], description: PackDescription, matrix: QuantizedMatrix,
    location: String
  ) throws(PackError) -> PackedTensor {
    let scaleDType = description.scaleDType
    var companions: [(info: TensorInfo, bytes: [UInt8])] = []
    for companion in infos {
      let suffix = companion.name.dropFirst(info.name.count + 1)
      let bytes: [UInt8]
      switch suffix {
      case "scales": bytes = narrowed(matrix.scales, to: scaleDType)
      case "biases", "zeros": bytes = narrowed(matrix.offsets, to: scaleDType)
      case "qweight":
        do { bytes = try matrix.packedBytes() } catch {
          throw .cannotPack(location: location, tensor: info.name, reason: error.description)
        }
      case "qzeros":
        let codes = matrix.offsets.map { UInt8(clamping: Int($0)) }
        bytes = packRows(codes, rows: description.rows, columns: description.groupsPerRow, bits: description.bits)
      case "qscales":
        let codes = matrix.secondLevel?.codes ?? []
        bytes = packRows(codes, rows: 1, columns: codes.count, bits: 4)
      case "scale_step": bytes = narrowed(matrix.secondLevel?.chunkScales ?? [], to: .f32)
      case "scale_zero": bytes = narrowed(matrix.secondLevel?.chunkZeros ?? [], to: .f32)
      default: bytes = []
      }
      guard bytes.count == companion.byteCount else {
        throw .cannotPack(
          location: location, tensor: info.name,
          reason: "companion '\(companion.name)' came out as \(bytes.count) bytes, not \(companion.byteCount)")
      }
      companions.append((companion, bytes))
    }
    return PackedTensor(name: info.name, description: description, companions: companions, matrix: matrix)
  }

  static func narrowed(_ values: [Float], to dtype: DType) -> [UInt8] {
    var out = [UInt8](repeating: 0, count: values.count * dtype.byteSize)
    values.withUnsafeBufferPointer { source in
      out.withUnsafeMutableBytes { DTypeConversion.narrow(source, to: dtype, into: $0) }
    }
    return out
  }

  static func roundTrip(_ values: [Float], through dtype: DType) -> [Float] {
    guard dtype != .f32 else { return values }
    let bytes = narrowed(values, to: dtype)
    var out = [Float](repeating: 0, count: values.count)
    bytes.withUnsafeBytes { raw in
      out.withUnsafeMutableBufferPointer { DTypeConversion.widen(raw, from: dtype, into: $0) }
    }
    return out
  }

  /// Packs a [rows, columns] code matrix, each row its own LSB-first stream.
  static func packRows(_ codes: [UInt8], rows: Int, columns: Int, bits: Int) -> [UInt8] {
    let perRow = BitPacking.byteCount(codes: columns, bits: bits)
    var out: [UInt8] = []
    out.reserveCapacity(rows * perRow)
    codes.withUnsafeBufferPointer { buffer in
      for row in 0..<rows {
        let slice = UnsafeBufferPointer(rebasing: buffer[(row * columns)..<((row + 1) * columns)])
        out.append(contentsOf: (try? BitPacking.pack(slice, bits: bits)) ?? [UInt8](repeating: 0, count: perRow))
      }
    }
    return out
  }
}

extension QuantizedMatrix {
  /// The first element whose dequantized value (in float32, as `dequantize()` computes it) is
  /// NaN or larger in magnitude than `limit`, as `[row, column]`; `nil` when all fit.
  public func firstDequantized(beyond limit: Float) -> (index: [Int], value: Float)? {
    let length = groupLength
    let groups = groupsPerRow
    guard length > 0, codes.count == rows * columns, scales.count == rows * groups, offsets.count == rows * groups
    else { return nil }
    let isBias = offsetKind == .bias
    let rows = rows
    let columns = columns
    return codes.withUnsafeBufferPointer { codes in
      scales.withUnsafeBufferPointer { scales in
        offsets.withUnsafeBufferPointer { offsets in
          func value(code: UInt8, _ scale: Float, _ offset: Float) -> Float {
            isBias ? scale * Float(code) + offset : scale * (Float(code) - offset)
          }
          func value(_ index: Int, _ scale: Float, _ offset: Float) -> Float {
            value(code: codes[index], scale, offset)
          }
          for row in 0..<rows {
            for group in 0..<groups {
              let scale = scales[row &* groups &+ group]
              let offset = offsets[row &* groups &+ group]
              // Rounding is monotonic, so every code's value lies between the values of codes 0
              // and 255: when both fit, the group needs no closer look.
              let ends = max(abs(value(code: 0, scale, offset)), abs(value(code: .max, scale, offset)))
              if ends <= limit { continue }
              let start = row &* columns &+ group &* length
              var largest: Float = 0
              for index in start..<(start &+ length) { largest = max(largest, abs(value(index, scale, offset))) }
              // `max` drops NaN, so a group with a non-finite scale or offset is looked at too.
              guard largest <= limit, scale.isFinite, offset.isFinite else {
                for index in start..<(start &+ length) where !(abs(value(index, scale, offset)) <= limit) {
                  return ([row, index &- row &* columns], value(index, scale, offset))
                }
                continue
              }
            }
          }
          return nil
        }
      }
    }
  }
}
