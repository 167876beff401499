import Foundation

#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

/// The container a checkpoint was read from.
public enum CheckpointFormat: String, Sendable {
  case safetensors
  case shardedSafetensors = "safetensors-sharded"
  case hdf5
  case gguf
}

/// Failures to find or recognise a checkpoint, before any format reader is involved.
public enum CheckpointError: Error, CustomStringConvertible, Equatable {
  case notFound(path: String)
  case noWeightsInFolder(path: String)
  case unreadableConfig(path: String, reason: String)

  public var description: String {
    switch self {
    case .notFound(let path):
      "\(path): no such file or folder"
    case .noWeightsInFolder(let path):
      "\(path): folder holds no weights (expected model.safetensors, model.safetensors.index.json, *.safetensors, *.h5 or *.gguf)"
    case .unreadableConfig(let path, let reason):
      "\(path): cannot read config: \(reason)"
    }
  }
}

/// A checkpoint opened from any path the tools accept: a model folder, a safetensors file, a
/// shard index, an HDF5 file, or `-` for a safetensors stream on stdin.
///
/// The tensors are read lazily through `source`; `configData` is the raw `config.json` found in
/// the folder (or beside the file), which architecture recognition parses.
public struct Checkpoint: Sendable {
  public let location: String
  public let format: CheckpointFormat
  public let source: any TensorSource
  /// The folder the checkpoint lives in, whose side files (tokenizer, config) belong to it.
  public let folder: String?
  public let configData: Data?
  /// Where `configData` came from, for messages.
  public let configPath: String?

  public static let hdf5Signature: [UInt8] = [0x89, 0x48, 0x44, 0x46, 0x0D, 0x0A, 0x1A, 0x0A]

  /// Opens `path`, choosing the reader from what the path is and from the file's first bytes.
  public static func open(_ path: String) throws -> Checkpoint {
    if path == "-" {
      let data = FileHandle.standardInput.readDataToEndOfFile()
      let source = try SafetensorsFile(stdinData: data, location: "-")
      return Checkpoint(
        location: "-", format: .safetensors, source: source, folder: nil, configData: nil,
        configPath: nil)
    }
    var isDirectory: ObjCBool = false
    guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
      throw CheckpointError.notFound(path: path)
    }
    if isDirectory.boolValue {
      return try openFolder(path)
    }
    let folder = (path as NSString).deletingLastPathComponent
    let (configData, configPath) = readConfig(inFolder: folder.isEmpty ? "." : folder)
    let (format, source) = try openFile(path)
    return try Checkpoint(
      location: path, format: format, source: source, folder: folder.isEmpty ? "." : folder,
      configData: configData, configPath: configPath
    ).validatingConfig()
  }

  /// Checks config.json, when there is one, against the tensors (`ModelConfig.validate`), so
  /// every tool refuses a config the engine would: once, here. A config that does not parse is
  /// left to the tools that read it, which report it as they always have. One shard of a
  /// sharded model opened alone holds only some layers, so its layers are not counted.
  func validatingConfig() throws -> Checkpoint {
    guard let configData,
      let config = try? ModelConfig(data: configData, location: configPath ?? location)
    else { return self }
    let loneShard =
      format == .safetensors
      && (location as NSString).lastPathComponent.range(of: #"-[0-9]+-of-[0-9]+\.safetensors$"#, options: .regularExpression)
        != nil
    try config.validate(against: loneShard ? [] : source.tensors)
    return self
  }

  private static func openFolder(_ path: String) throws -> Checkpoint {
    let names = (try? FileManager.default.contentsOfDirectory(atPath: path))?.sorted() ?? []
    let (configData, configPath) = readConfig(inFolder: path)
    func join(_ name: String) -> String { (path as NSString).appendingPathComponent(name) }

    let weightsFile: String
    if names.contains("model.safetensors.index.json") {
      weightsFile = join("model.safetensors.index.json")
    } else if names.contains("model.safetensors") {
      weightsFile = join("model.safetensors")
    } else if names.contains("model.safetensors.zst") {
      weightsFile = join("model.safetensors.zst")
    } else if let index = names.first(where: { $0.hasSuffix(".safetensors.index.json") }) {
      weightsFile = join(index)
    } else if let single = names.first(where: { $0.hasSuffix(".safetensors") }) {
      weightsFile = join(single)
    } else if let h5 = names.first(where: { $0.hasSuffix(".h5") || $0.hasSuffix(".hdf5") }) {
      weightsFile = join(h5)
    } else if let gguf = names.first(where: { $0.hasSuffix(".gguf") }) {
      weightsFile = join(gguf)
    } else {
      throw CheckpointError.noWeightsInFolder(path: path)
    }
    let (format, source) = try openFile(weightsFile)
    return try Checkpoint(
      location: path, format: format, source: source, folder: path, configData: configData,
      configPath: configPath
    ).validatingConfig()
  }

  private static func openFile(_ path: String) throws -> (CheckpointFormat, any TensorSource) {
    if path.hasSuffix(".zst") {
      return try openCompressed(path)
    }
    if path.hasSuffix(".json") {
      return (.shardedSafetensors, try ShardedCheckpoint(indexPath: path))
    }
    let head = firstBytes(of: path, count: 8)
    if head == hdf5Signature {
      return (.hdf5, try HDF5File(path: path))
    }
    if head.starts(with: Array("GGUF".utf8)) {
      return (.gguf, try GGUFFile(path: path))
    }
    return (.safetensors, try SafetensorsFile(path: path))
  }

  /// A `.zst` file: decompressed to an unlinked scratch file, then read like the file it holds.
  private static func openCompressed(_ path: String) throws -> (CheckpointFormat, any TensorSource) {
    let descriptor = try ZstdInput.decompress(path)
    defer { close(descriptor) }
    var head = [UInt8](repeating: 0, count: 8)
    let got = head.withUnsafeMutableBytes { pread(descriptor, $0.baseAddress, 8, 0) }
    head = Array(head.prefix(max(got, 0)))
    // HDF5 and GGUF readers take paths; the descriptor's /proc entry names the scratch file.
    if head == hdf5Signature {
      return (.hdf5, try HDF5File(path: "/proc/self/fd/\(descriptor)"))
    }
    if head.starts(with: Array("GGUF".utf8)) {
      return (.gguf, try GGUFFile(path: "/proc/self/fd/\(descriptor)"))
    }
    return (.safetensors, try SafetensorsFile(descriptor: descriptor, location: path))
  }

  private static func firstBytes(of path: String, count: Int) -> [UInt8] {
    guard let handle = FileHandle(forReadingAtPath: path) else { return [] }
    defer { try? handle.close() }
    return [UInt8]((try? handle.read(upToCount: count)) ?? Data())
  }

  private static func readConfig(inFolder folder: String) -> (Data?, String?) {
    let path = (folder as NSString).appendingPathComponent("config.json")
    guard let data = FileManager.default.contents(atPath: path) else { return (nil, nil) }
    return (data, path)
  }
}
