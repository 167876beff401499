import QFormats

extension _WeightLoader {
  /// A fused weight (Phi-3's `qkv_proj`, `gate_up_proj`) cut into consecutive row blocks of
  /// `rows`, each a dense weight: a packed fused weight is dequantized, since its groups do not
  /// follow the cut.
  func splitLinear(_ name: String, rows: [Int], columns: Int) throws -> [LinearWeight] {
    let info = try info(name, shape: [rows.reduce(0, +), columns])
    let values =
      if let pack, pack.packDescriptions[info.name] != nil {
        try pack.dequantizedFloats(of: info.name)
      } else {
        try source.floats(of: info.name)
      }
    var start = 0
    return rows.map { count in
      defer { start += count * columns }
      return .dense(rows: count, columns: columns, values: Array(values[start..<(start + count * columns)]))
    }
  }
}
