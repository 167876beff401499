import QFormats

/// Reconstructs weights from qpack companions, in float32 as `Formats/qpack.md` prescribes.
public enum PackDecoder {
  /// Dequantizes tensor `name` row-major, reading each companion through `read`.
  ///
  /// - Parameter read: returns a companion's info and bytes, or `nil` when it is absent.
  public static func dequantize(
    name: String, description: PackDescription, location: String,
    read: (String) throws -> (info: TensorInfo, bytes: [UInt8])?
  ) throws -> [Float] {
    let rows = description.rows
    let columns = description.columns
    let groups = description.groupsPerRow
    let group = description.groupSize
    let expected = description.companions(of: name)
    var parts: [String: [UInt8]] = [:]
    for companion in expected {
      guard var (info, bytes) = try read(companion.name) else {
        throw PackError.badCompanion(location: location, tensor: name, reason: "has no companion '\(companion.name)'")
      }
      if description.isCompressed, companion.name == name + ".qweight" {
        guard info.dtype == .u8, info.shape.count == 1 else {
          throw PackError.badCompanion(
            location: location, tensor: name,
            reason: "has compressed companion '\(companion.name)' of \(info.dtype.rawValue) \(info.shape), expected U8 [n]")
        }
        bytes = try bytes.withUnsafeBytes { (frame) throws(PackError) in
          try PackCompression.decompress(frame, expectedCount: companion.byteCount, location: location, tensor: name)
        }
        info = companion
      }
      guard info.dtype == companion.dtype, info.shape == companion.shape, bytes.count == companion.byteCount else {
        throw PackError.badCompanion(
          location: location, tensor: name,
          reason: "has companion '\(companion.name)' of \(info.dtype.rawValue) \(info.shape), expected \(companion.dtype.rawValue) \(companion.shape)")
      }
      parts[String(companion.name.dropFirst(name.count + 1))] = bytes
    }
    func floats(_ key: String, _ dtype: DType) -> [Float] {
      let bytes = parts[key] ?? []
      var out = [Float](repeating: 0, count: bytes.count / dtype.byteSize)
      bytes.withUnsafeBytes { raw in out.withUnsafeMutableBufferPointer { DTypeConversion.widen(raw, from: dtype, into: $0) } }
      return out
    }
    func codes(_ key: String, rows: Int, columns: Int, bits: Int) throws -> [UInt8] {
      let bytes = parts[key] ?? []
      let perRow = BitPacking.byteCount(codes: columns, bits: bits)
      var out: [UInt8] = []
      out.reserveCapacity(rows * columns)
      try bytes.withUnsafeBytes { raw in
        for row in 0..<rows {
          out.append(
            contentsOf: try BitPacking.unpack(
              UnsafeRawBufferPointer(rebasing: raw[(row * perRow)..<((row + 1) * perRow)]), count: columns, bits: bits))
        }
      }
      return out
    }

    let weightCodes = try codes("qweight", rows: rows, columns: columns, bits: description.bits)
    var scales: [Float]
    if description.grid == .bilevel {
      let chunk = description.scaleGroupSize ?? 1
      let steps = floats("scale_step", .f32)
      let zeros = floats("scale_zero", .f32)
      let scaleCodes = try codes("qscales", rows: 1, columns: rows * groups, bits: 4)
      scales = [Float](repeating: 0, count: rows * groups)
      for ordered in 0..<(rows * groups) {
        let chunkIndex = ordered / chunk
        let matrixIndex = (ordered % rows) * groups + ordered / rows
        scales[matrixIndex] = steps[chunkIndex] * (Float(scaleCodes[ordered]) - zeros[chunkIndex])
      }
    } else {
      scales = floats("scales", description.scaleDType)
    }
    let offsets: [Float]
    switch description.zero {
    case .bias: offsets = floats("biases", description.scaleDType)
    case .float: offsets = floats("zeros", description.scaleDType)
    case .fixed: offsets = [Float](repeating: Float(description.zeroPoint ?? 0), count: rows * groups)
    case .int: offsets = try codes("qzeros", rows: rows, columns: groups, bits: description.bits).map { Float($0) }
    }

    var out = [Float](repeating: 0, count: rows * columns)
    let isBias = description.zero == .bias
    for row in 0..<rows {
      for groupIndex in 0..<groups {
        let scale = scales[row * groups + groupIndex]
        let offset = offsets[row * groups + groupIndex]
        let start = row * columns + groupIndex * group
        if isBias {
          for index in start..<(start + group) { out[index] = scale * Float(weightCodes[index]) + offset }
        } else {
          for index in start..<(start + group) { out[index] = scale * (Float(weightCodes[index]) - offset) }
        }
      }
    }
    return out
  }
}
