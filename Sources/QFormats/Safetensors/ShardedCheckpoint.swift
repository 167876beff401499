#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif
import Foundation

/// A checkpoint split over several safetensors files by `model.safetensors.index.json`.
///
/// The index (`{"metadata": {...}, "weight_map": {tensor: file}}`, also mlx-lm's variant with
/// `total_parameters` and a sorted map) is checked against the shards on open: every file it
/// names must exist and hold exactly the tensors mapped to it. `total_size` is not checked,
/// since some tools record file sizes rather than tensor bytes.
public final class ShardedCheckpoint: TensorSource, @unchecked Sendable {
  // Unchecked: every stored property is immutable; the shards are Sendable themselves.
  public let location: String
  /// Every tensor: shard by shard, each in its file's data order.
  public let tensors: [TensorInfo]
  /// The first shard's `__metadata__`, overlaid with the index's `metadata` (numbers as text).
  public let metadata: [String: String]
  /// The shards in the order the weight map first names them.
  public let shards: [SafetensorsFile]
  /// The index's `metadata.total_size`, if present.
  public let totalSize: Int?
  private let shardByTensor: [String: Int]

  /// Opens the index at `indexPath` and every shard it names (paths relative to the index).
  ///
  /// - Throws: `SafetensorsError.invalidIndex`, `.missingShard`, `.shardContentsDiffer`, or
  ///   the error of a shard that does not open.
  public init(indexPath: String) throws {
    location = indexPath
    let descriptor = try SafetensorsFile.openOnce(indexPath)
    defer { close(descriptor) }
    let data = try SafetensorsFile.readAll(descriptor, location: indexPath)
    let json: HeaderJSON
    do {
      json = try data.withUnsafeBytes { (raw) throws(HeaderJSONError) in try HeaderJSONParser.parse(raw) }
    } catch let error as HeaderJSONError {
      switch error.kind {
      case .duplicateKey(let key): throw SafetensorsError.invalidIndex(location: indexPath, reason: "names '\(key)' more than once")
      case .syntax(let reason):
        throw SafetensorsError.invalidIndex(location: indexPath, reason: "is not valid JSON at byte \(error.offset): \(reason)")
      }
    }
    func invalid(_ reason: String) -> SafetensorsError { .invalidIndex(location: indexPath, reason: reason) }
    guard case .object(let members) = json else { throw invalid("is not a JSON object") }
    guard let weightMapValue = members.first(where: { $0.key == "weight_map" })?.value else {
      throw invalid("has no 'weight_map'")
    }
    guard case .object(let weightMap) = weightMapValue else { throw invalid("has a 'weight_map' that is not an object") }
    if weightMap.isEmpty { throw invalid("has an empty 'weight_map'") }
    var indexMetadata: [String: String] = [:]
    var totalSize: Int?
    if let metadataValue = members.first(where: { $0.key == "metadata" })?.value {
      guard case .object(let entries) = metadataValue else { throw invalid("has a 'metadata' that is not an object") }
      for entry in entries {
        switch entry.value {
        case .string(let text): indexMetadata[entry.key] = text
        case .integer(let n):
          indexMetadata[entry.key] = String(n)
          if entry.key == "total_size" { totalSize = n }
        case .otherNumber(let text): indexMetadata[entry.key] = text
        case .bool(let flag): indexMetadata[entry.key] = String(flag)
        default: break  // nested values have no string form; the tensors do not depend on them
        }
      }
    }
    self.totalSize = totalSize

    var fileOrder: [String] = []
    var tensorsByFile: [String: [String]] = [:]
    for entry in weightMap {
      guard case .string(let file) = entry.value else {
        throw invalid("maps tensor '\(entry.key)' to \(entry.value.kindDescription), not a file name")
      }
      if file.isEmpty || file.hasPrefix("/") || file.split(separator: "/").contains("..") {
        throw invalid("maps tensor '\(entry.key)' to '\(file)', which is outside the checkpoint's folder")
      }
      if tensorsByFile[file] == nil { fileOrder.append(file) }
      tensorsByFile[file, default: []].append(entry.key)
    }

    let directory = URL(fileURLWithPath: indexPath).deletingLastPathComponent()
    var shards: [SafetensorsFile] = []
    var shardByTensor: [String: Int] = [:]
    var tensors: [TensorInfo] = []
    for file in fileOrder {
      let path = directory.appendingPathComponent(file).path
      let exists: Bool
      do {
        exists = try SideFile.exists(path)
      } catch {
        throw SideFile.Failure(path: path, problem: error)
      }
      guard exists else {
        throw SafetensorsError.missingShard(location: indexPath, shard: file)
      }
      let shard = try SafetensorsFile(path: path)
      let mapped = tensorsByFile[file] ?? []
      let present = Set(shard.tensors.map(\.name))
      if let absent = mapped.first(where: { !present.contains($0) }) {
        throw SafetensorsError.shardContentsDiffer(
          location: indexPath, shard: file, reason: "lacks tensor '\(absent)' that the weight map assigns to it")
      }
      let mappedSet = Set(mapped)
      if let extra = shard.tensors.first(where: { !mappedSet.contains($0.name) }) {
        throw SafetensorsError.shardContentsDiffer(
          location: indexPath, shard: file, reason: "holds tensor '\(extra.name)' that the weight map does not list")
      }
      for info in shard.tensors { shardByTensor[info.name] = shards.count }
      tensors += shard.tensors
      shards.append(shard)
    }
    self.shards = shards
    self.shardByTensor = shardByTensor
    self.tensors = tensors
    metadata = (shards.first?.metadata ?? [:]).merging(indexMetadata) { _, index in index }
  }

  /// The shard that holds `name`, or `nil`.
  public func shard(holding name: String) -> SafetensorsFile? {
    shardByTensor[name].map { shards[$0] }
  }

  public func withRawBytes<R>(of name: String, _ body: (UnsafeRawBufferPointer) throws -> R) throws -> R {
    guard let shard = shard(holding: name) else {
      throw SafetensorsError.tensorNotFound(location: location, tensor: name)
    }
    return try shard.withRawBytes(of: name, body)
  }
}
