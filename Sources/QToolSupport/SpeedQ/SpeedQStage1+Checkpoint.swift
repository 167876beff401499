import Foundation
import QCompute
import QFormats

extension SpeedQStage1 {
  /// Writes every finished block's matrices (codes, scales, offsets, second level) and the
  /// number of finished blocks to a safetensors file, atomically.
  func saveCheckpoint(_ results: [String: QuantizedMatrix], blocks: Int, to path: String) throws {
    var floats: [String: [Float]] = [:]
    var bytes: [String: [UInt8]] = [:]
    var metadata = ["speedq.stage1.blocks": String(blocks), "speedq.stage1.fingerprint": fingerprint]
    for (name, matrix) in results {
      bytes["codes." + name] = matrix.codes
      floats["scales." + name] = matrix.scales
      floats["offsets." + name] = matrix.offsets
      var shape = "\(matrix.method.rawValue) \(matrix.rows) \(matrix.columns)"
      if let second = matrix.secondLevel {
        bytes["second_codes." + name] = second.codes
        floats["chunk_scales." + name] = second.chunkScales
        floats["chunk_zeros." + name] = second.chunkZeros
        floats["first_scales." + name] = second.unquantizedScales
        shape += " \(second.bits) \(second.chunkSize)"
      }
      metadata["matrix." + name] = shape
    }
    let plan =
      floats.map { TensorInfo(name: $0.key, dtype: .f32, shape: [$0.value.count]) }
      + bytes.map { TensorInfo(name: $0.key, dtype: .u8, shape: [$0.value.count]) }
    let writer = try SafetensorsWriter(path: path, plan: plan, metadata: metadata)
    for info in writer.order {
      if let values = floats[info.name] {
        try values.withUnsafeBytes { try writer.append(name: info.name, bytes: $0) }
      } else if let values = bytes[info.name] {
        try writer.append(name: info.name, bytes: values)
      }
    }
    try writer.finish()
  }

  /// Reads what `saveCheckpoint` wrote: the matrices and how many blocks they finish.
  /// - Throws: `SpeedQError.checkpoint` for a checkpoint of another run or a tensor that is
  ///   missing or does not fit its matrix.
  func loadCheckpoint(from path: String) throws -> (results: [String: QuantizedMatrix], blocks: Int) {
    let file = try SafetensorsFile(path: path)
    let metadata = file.metadata
    guard metadata["speedq.stage1.fingerprint"] == fingerprint else {
      throw SpeedQError.checkpoint(
        path: path, reason: "was saved by another stage 1 run ('\(metadata["speedq.stage1.fingerprint"] ?? "none")')")
    }
    guard let text = metadata["speedq.stage1.blocks"], let blocks = Int(text), blocks >= 0 else {
      throw SpeedQError.checkpoint(path: path, reason: "has no block count")
    }
    func floats(_ key: String, count: Int) throws -> [Float] {
      guard let info = file.info(named: key), info.dtype == .f32, info.elementCount == count else {
        throw SpeedQError.checkpoint(path: path, reason: "has no F32 tensor '\(key)' of \(count) values")
      }
      return try file.floats(of: key)
    }
    func bytes(_ key: String, count: Int) throws -> [UInt8] {
      guard let info = file.info(named: key), info.dtype == .u8, info.elementCount == count else {
        throw SpeedQError.checkpoint(path: path, reason: "has no U8 tensor '\(key)' of \(count) values")
      }
      return try file.withRawBytes(of: key) { Array($0) }
    }
    var results: [String: QuantizedMatrix] = [:]
    for (key, shape) in metadata where key.hasPrefix("matrix.") {
      let name = String(key.dropFirst("matrix.".count))
      let fields = shape.split(separator: " ").map(String.init)
      guard let grid = grids[name], fields.count == 3 || fields.count == 5,
        let method = QuantizedMatrix.Method(rawValue: fields[0]), let rows = Int(fields[1]),
        let columns = Int(fields[2]), rows > 0, columns > 0, rows <= 1 << 20, columns <= 1 << 20
      else {
        throw SpeedQError.checkpoint(path: path, reason: "matrix '\(name)' is described as '\(shape)'")
      }
      // A matrix of the right grid and shape, whose fields are then replaced by the saved ones.
      let zeros = [Float](repeating: 0, count: rows * columns)
      var matrix: QuantizedMatrix
      do {
        matrix = try zeros.withUnsafeBufferPointer { try grid.roundToNearest($0, rows: rows, columns: columns) }
      } catch { throw SpeedQError.checkpoint(path: path, reason: "matrix '\(name)': \(error)") }
      let groups = rows * matrix.groupsPerRow
      matrix.method = method
      matrix.codes = try bytes("codes." + name, count: rows * columns)
      matrix.scales = try floats("scales." + name, count: groups)
      matrix.offsets = try floats("offsets." + name, count: groups)
      if fields.count == 5 {
        guard let bits = Int(fields[3]), let chunk = Int(fields[4]), chunk > 0, groups % chunk == 0 else {
          throw SpeedQError.checkpoint(path: path, reason: "matrix '\(name)' is described as '\(shape)'")
        }
        guard matrix.secondLevel != nil else {
          throw SpeedQError.checkpoint(path: path, reason: "matrix '\(name)' has a second level its grid does not")
        }
        matrix.secondLevel?.bits = bits
        matrix.secondLevel?.chunkSize = chunk
        matrix.secondLevel?.codes = try bytes("second_codes." + name, count: groups)
        matrix.secondLevel?.chunkScales = try floats("chunk_scales." + name, count: groups / chunk)
        matrix.secondLevel?.chunkZeros = try floats("chunk_zeros." + name, count: groups / chunk)
        matrix.secondLevel?.unquantizedScales = try floats("first_scales." + name, count: groups)
      } else {
        matrix.secondLevel = nil
      }
      results[name] = matrix
    }
    return (results, blocks)
  }
}
