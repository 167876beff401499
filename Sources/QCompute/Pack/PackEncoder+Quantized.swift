import QFormats

extension PackEncoder {
  /// Packs a matrix some other method already quantized (GPTQ, a Gram clip search) into the
  /// companions `spec` lays out, so calibrated results are stored like round-to-nearest ones.
  ///
  /// Scales and float offsets are rounded to the spec's scale dtype as `pack` does (widened to
  /// F32 when that dtype cannot hold them), so the returned `matrix` is what a reader
  /// reconstructs; the codes are kept as given.
  /// - Throws: `PackError.cannotPack` when the matrix does not fit the spec (shape, bits, group
  ///   length, how offsets are stored, a missing second level) or holds a non-finite scale.
  public static func pack(
    quantized: QuantizedMatrix, info: TensorInfo, spec: PackSpec, location: String
  ) throws(PackError) -> PackedTensor {
    try widening(spec, dtype: info.dtype) { (spec, limit) throws(PackError) in
      try pack(quantized: quantized, info: info, exactly: spec, limit: limit, location: location)
    }
  }

  /// `pack(quantized:)` with the scale dtype of `spec`, never widened.
  static func pack(
    quantized: QuantizedMatrix, info: TensorInfo, exactly spec: PackSpec, limit: Float, location: String
  ) throws(PackError) -> PackedTensor {
    let (description, infos) = try companions(of: info, spec: spec, location: location)
    func reject(_ reason: String) -> PackError { .cannotPack(location: location, tensor: info.name, reason: reason) }
    guard quantized.rows == description.rows, quantized.columns == description.columns else {
      throw reject(
        "the quantized matrix is \(quantized.rows) x \(quantized.columns), the pack needs \(description.rows) x \(description.columns)")
    }
    guard quantized.bits == spec.bits, quantized.groupLength == description.groupSize
    else {
      throw reject("the quantized matrix has \(quantized.bits) bits in groups of \(quantized.groupLength), not \(spec)")
    }
    let expectsBias = description.zero == .bias
    guard (quantized.offsetKind == .bias) == expectsBias else {
      throw reject("the quantized matrix stores \(quantized.offsetKind.rawValue) offsets, the spec '\(spec)' does not")
    }
    guard description.grid != .bilevel || quantized.secondLevel != nil else {
      throw reject("the quantized matrix has no second-level scales for the bilevel grid")
    }
    guard quantized.codes.count == quantized.rows * quantized.columns,
      quantized.scales.count == quantized.rows * quantized.groupsPerRow,
      quantized.offsets.count == quantized.scales.count
    else { throw reject("the quantized matrix has arrays of the wrong length") }
    if let bad = quantized.scales.first(where: { !$0.isFinite }) ?? quantized.offsets.first(where: { !$0.isFinite }) {
      throw reject("the quantized matrix has a scale or offset of \(bad)")
    }

    var matrix = quantized
    let scaleDType = description.scaleDType
    if description.grid != .bilevel { matrix.scales = roundTrip(matrix.scales, through: scaleDType) }
    switch description.zero {
    case .bias, .float: matrix.offsets = roundTrip(matrix.offsets, through: scaleDType)
    case .fixed:
      let zeroPoint = Float(description.zeroPoint ?? 0)
      guard matrix.offsets.allSatisfy({ $0 == zeroPoint }) else {
        throw reject("the symmetric grid did not use zero point \(zeroPoint)")
      }
    case .int:
      let levels = Float((1 << spec.bits) - 1)
      guard matrix.offsets.allSatisfy({ $0 == $0.rounded() && $0 >= 0 && $0 <= levels }) else {
        throw reject("the zero points are not \(spec.bits)-bit integers")
      }
    }
    try checkDequantized(matrix, description: description, limit: limit, tensor: info.name, location: location)
    return try assemble(info: info, companions: infos, description: description, matrix: matrix, location: location)
  }
}
