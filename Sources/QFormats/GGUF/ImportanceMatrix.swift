import Foundation

/// The per-column weights of an importance matrix written by llama.cpp's `llama-imatrix`, read
/// as `llama-quantize --imatrix` reads them (`common_imatrix_load`, `load_imatrix`).
///
/// Two layouts exist. The GGUF one (the default since 2025) stores `NAME.in_sum2` (the summed
/// squared activations, one row per expert) and `NAME.counts` (the tokens each row saw) as F32
/// tensors, with `imatrix.datasets`, `imatrix.chunk_count` and `imatrix.chunk_size`; a weight is
/// `in_sum2 / round(count)`, or 1 for an expert that saw no token. The legacy `.dat` layout
/// (`--output-format dat`) is a little-endian `i32` entry count, then per entry an `i32` name
/// length, the name, `i32` ncall, `i32` value count and the values, already `mean * ncall`;
/// optionally followed by the `i32` chunk count and an `i32`-length dataset name. A weight is
/// `value / ncall` (the value itself when ncall is 0).
public struct ImportanceMatrix: Sendable {
  public enum Layout: String, Sendable {
    case gguf
    case legacy
  }

  public let location: String
  public let layout: Layout
  /// Per tensor (its GGUF name, `blk.0.attn_q.weight`): one weight per input column, the
  /// experts' rows one after another.
  public let weights: [String: [Float]]
  /// The calibration files named in the matrix.
  public let datasets: [String]
  /// Chunks of calibration text the matrix was computed on (0 when the file does not say).
  public let chunkCount: Int
  /// Tokens per chunk (0 in the legacy layout, which does not record it).
  public let chunkSize: Int

  /// Reads the file at `path`, in either layout (a file starting with `GGUF` is read as GGUF).
  /// - Throws: `GGUFError` naming the file, and the entry or key, that is not as expected.
  public init(path: String) throws {
    location = path
    guard let handle = FileHandle(forReadingAtPath: path) else {
      throw GGUFError.badHeader(path: path, defect: "cannot be opened for reading")
    }
    let magic = try handle.read(upToCount: 4) ?? Data()
    try handle.close()
    if magic == Data("GGUF".utf8) {
      let file = try GGUFFile(path: path)
      (weights, datasets, chunkCount, chunkSize) = try Self.readGGUF(file)
      layout = .gguf
    } else {
      guard let data = FileManager.default.contents(atPath: path) else {
        throw GGUFError.badHeader(path: path, defect: "cannot be read")
      }
      (weights, datasets, chunkCount) = try Self.readLegacy(data, path: path)
      chunkSize = 0
      layout = .legacy
    }
  }

  private static func readGGUF(_ file: GGUFFile) throws -> (
    [String: [Float]], [String], Int, Int
  ) {
    let path = file.location
    func count(_ key: String) throws -> Int {
      guard let value = file.values[key] else {
        throw GGUFError.badKey(
          path: path, key: key, defect: "is missing; llama-quantize needs it in an imatrix GGUF")
      }
      guard case .uint32(let number) = value else {
        throw GGUFError.badKey(path: path, key: key, defect: "is \(value.type.name), expected u32")
      }
      return Int(number)
    }
    guard let datasetValue = file.values["imatrix.datasets"] else {
      throw GGUFError.badKey(
        path: path, key: "imatrix.datasets",
        defect: "is missing; llama-quantize needs it in an imatrix GGUF")
    }
    guard case .array(.string, let items) = datasetValue else {
      throw GGUFError.badKey(
        path: path, key: "imatrix.datasets", defect: "is \(datasetValue.type.name), expected an array of strings")
    }
    let datasets = items.compactMap(\.stringValue)
    let chunkCount = try count("imatrix.chunk_count")
    let chunkSize = try count("imatrix.chunk_size")

    var sums: [String: GGUFTensorInfo] = [:]
    var counts: [String: GGUFTensorInfo] = [:]
    for tensor in file.allTensors {
      if tensor.name.hasSuffix(".in_sum2") {
        sums[String(tensor.name.dropLast(".in_sum2".count))] = tensor
      } else if tensor.name.hasSuffix(".counts") {
        counts[String(tensor.name.dropLast(".counts".count))] = tensor
      }
    }
    guard !sums.isEmpty || !counts.isEmpty else {
      throw GGUFError.badHeader(path: path, defect: "has no '.in_sum2' and '.counts' tensors")
    }
    var weights: [String: [Float]] = [:]
    for name in Set(sums.keys).union(counts.keys).sorted() {
      guard let sum = sums[name] else {
        throw GGUFError.badTensor(
          path: path, tensor: name + ".counts", defect: "has no matching '\(name).in_sum2'")
      }
      guard let tally = counts[name] else {
        throw GGUFError.badTensor(
          path: path, tensor: name + ".in_sum2", defect: "has no matching '\(name).counts'")
      }
      for tensor in [sum, tally] where tensor.type != .f32 {
        throw GGUFError.badTensor(path: path, tensor: tensor.name, defect: "is \(tensor.type.name), expected F32")
      }
      let values = try file.floats(of: sum.name)
      let experts = try file.floats(of: tally.name)
      guard !experts.isEmpty, values.count % experts.count == 0 else {
        throw GGUFError.badTensor(
          path: path, tensor: sum.name,
          defect: "has \(values.count) values, not a whole row for each of \(experts.count) counts")
      }
      let columns = values.count / experts.count
      var out = [Float](repeating: 1, count: values.count)
      for (row, rawCount) in experts.enumerated() {
        // llama.cpp stores the count as f32 and reads it back with lround.
        guard rawCount.isFinite, abs(rawCount) < 9.0e18 else {
          throw GGUFError.badTensor(
            path: path, tensor: tally.name, defect: "has count \(rawCount), expected a token count")
        }
        let count = Float(Int64(rawCount.rounded(.toNearestOrAwayFromZero)))
        guard count > 0 else { continue }
        for column in 0..<columns {
          out[row * columns + column] = values[row * columns + column] / count
        }
      }
      weights[name] = out
    }
    return (weights, datasets, chunkCount, chunkSize)
  }

  private static func readLegacy(_ data: Data, path: String) throws -> (
    [String: [Float]], [String], Int
  ) {
    var offset = 0
    func int32(_ what: String) throws -> Int {
      guard offset + 4 <= data.count else {
        throw GGUFError.truncated(path: path, what: what, offset: offset, fileSize: data.count)
      }
      let value = data.withUnsafeBytes {
        Int32(littleEndian: $0.loadUnaligned(fromByteOffset: offset, as: Int32.self))
      }
      offset += 4
      return Int(value)
    }
    func bytes(_ count: Int, _ what: String) throws -> Data {
      guard count >= 0, count <= data.count - offset else {
        throw GGUFError.truncated(path: path, what: what, offset: offset, fileSize: data.count)
      }
      defer { offset += count }
      return data.subdata(in: (data.startIndex + offset)..<(data.startIndex + offset + count))
    }
    let entries = try int32("entry count")
    guard entries >= 1 else {
      throw GGUFError.badHeader(
        path: path, defect: "has entry count \(entries), expected an imatrix (GGUF or legacy .dat) with at least one entry")
    }
    var weights: [String: [Float]] = [:]
    for index in 0..<entries {
      let length = try int32("name length of entry \(index)")
      guard length >= 0 else {
        throw GGUFError.badHeader(path: path, defect: "entry \(index) has name length \(length)")
      }
      let nameBytes = try bytes(length, "name of entry \(index)")
      guard let name = String(data: nameBytes, encoding: .utf8) else {
        throw GGUFError.badHeader(path: path, defect: "entry \(index) has a name that is not UTF-8")
      }
      let calls = try int32("ncall of '\(name)'")
      let count = try int32("value count of '\(name)'")
      guard count >= 1 else {
        throw GGUFError.badTensor(path: path, tensor: name, defect: "has \(count) values, expected at least 1")
      }
      guard count <= (data.count - offset) / 4 else {
        throw GGUFError.truncated(
          path: path, what: "\(count) values of '\(name)'", offset: offset, fileSize: data.count)
      }
      let raw = try bytes(count * 4, "values of '\(name)'")
      var values = raw.withUnsafeBytes { buffer in
        (0..<count).map {
          Float(bitPattern: UInt32(littleEndian: buffer.loadUnaligned(fromByteOffset: 4 * $0, as: UInt32.self)))
        }
      }
      if calls > 0 {
        let divisor = Float(calls)
        for index in values.indices { values[index] /= divisor }
      }
      guard weights.updateValue(values, forKey: name) == nil else {
        throw GGUFError.badTensor(path: path, tensor: name, defect: "appears twice")
      }
    }
    var chunkCount = 0
    var datasets: [String] = []
    if offset < data.count {
      chunkCount = try int32("chunk count")
      if offset + 4 <= data.count {
        let length = try int32("dataset name length")
        if length > 0 {
          let name = try bytes(length, "dataset name")
          datasets.append(String(decoding: name, as: UTF8.self))
        }
      }
    }
    return (weights, datasets, chunkCount)
  }
}
