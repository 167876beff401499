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
  /// A sentence-transformers `modules.json` that does not name a Transformer module's folder.
  case invalidModules(path: String, reason: String)
  /// A file of this kind must be seekable, and `path` is a pipe, a device or a socket.
  case notRegularFile(path: String, kind: String, format: String)
  /// The name says `expected`, but the first bytes are not its signature, and the file does
  /// not read as safetensors either.
  case unrecognised(path: String, expected: String, looksLike: String?)
  case system(path: String, operation: String, errno: Int32)

  public var description: String {
    switch self {
    case .notFound(let path):
      "\(path): no such file or folder"
    case .notRegularFile(let path, let kind, let format):
      "\(path): is \(kind), not a regular file; \(format) input must be a regular, seekable file"
    case .unrecognised(let path, let expected, let looksLike):
      "\(path): not \(expected == "HDF5" ? "an" : "a") \(expected) file (its first bytes are not the \(expected) signature) nor a safetensors file"
        + (looksLike.map { "; it \($0)" } ?? "")
    case .system(let path, let operation, let code):
      "\(path): \(operation) failed: \(_systemMessage(code))"
    case .noWeightsInFolder(let path):
      "\(path): folder holds no weights (expected model.safetensors, model.safetensors.index.json, *.safetensors, *.h5 or *.gguf)"
    case .unreadableConfig(let path, let reason):
      "\(path): cannot read config: \(reason)"
    case .invalidModules(let path, let reason):
      "\(path): \(reason); expected a list of modules, one of type sentence_transformers.models.Transformer with its folder as 'path'"
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

  /// The same checkpoint read through another source, such as one that dequantizes on read.
  public func replacingSource(with source: any TensorSource) -> Checkpoint {
    Checkpoint(
      location: location, format: format, source: source, folder: folder, configData: configData,
      configPath: configPath)
  }

  /// The same checkpoint read through another source with the config that describes it, such
  /// as a GGUF file presented under Hugging Face names with a config from its metadata.
  public func replacingSource(with source: any TensorSource, configData: Data, configPath: String) -> Checkpoint {
    Checkpoint(
      location: location, format: format, source: source, folder: folder, configData: configData,
      configPath: configPath)
  }

  /// Opens `path`, choosing the reader from what the path is and from the file's first bytes.
  ///
  /// Each input is opened once: a named pipe or a device is read as the stream it is (a
  /// safetensors stream, bounded by its header) and never reopened.
  public static func open(_ path: String) throws -> Checkpoint {
    if path == "-" {
      let source = try SafetensorsFile(descriptor: STDIN_FILENO, location: "-")
      return Checkpoint(
        location: "-", format: .safetensors, source: source, folder: nil, configData: nil,
        configPath: nil)
    }
    let descriptor = try openInput(path)
    var status = stat()
    if fstat(descriptor, &status) != 0 {
      let code = errno
      close(descriptor)
      throw CheckpointError.system(path: path, operation: "fstat", errno: code)
    }
    if (status.st_mode & S_IFMT) == S_IFDIR {
      close(descriptor)
      return try openFolder(path)
    }
    let folder = (path as NSString).deletingLastPathComponent
    let (configData, configPath) = readConfig(inFolder: folder.isEmpty ? "." : folder)
    let (format, source) = try openFile(path, descriptor: descriptor)
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

  /// Opens `path` for reading; a named pipe without a writer opens at once (and reads as
  /// empty) instead of waiting.
  private static func openInput(_ path: String) throws -> Int32 {
    let descriptor = Glibc.open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)
    if descriptor < 0 {
      let code = errno
      if code == ENOENT { throw CheckpointError.notFound(path: path) }
      throw CheckpointError.system(path: path, operation: "open", errno: code)
    }
    let flags = fcntl(descriptor, F_GETFL)
    if flags >= 0 { _ = fcntl(descriptor, F_SETFL, flags & ~O_NONBLOCK) }
    return descriptor
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
    } else if names.contains("modules.json") {
      return try openFolder(try transformerFolder(modules: join("modules.json")))
    } else {
      throw CheckpointError.noWeightsInFolder(path: path)
    }
    let (format, source) = try openFile(weightsFile, descriptor: try openInput(weightsFile))
    return try Checkpoint(
      location: path, format: format, source: source, folder: path, configData: configData,
      configPath: configPath
    ).validatingConfig()
  }

  /// The folder of a sentence-transformers model's Transformer module (`0_Transformer/` in
  /// older saves), which holds its config.json and weights; pooling and normalisation modules
  /// have no weights.
  static func transformerFolder(modules path: String) throws -> String {
    let data: Data
    do {
      data = try Data(contentsOf: URL(fileURLWithPath: path))
    } catch {
      throw CheckpointError.invalidModules(path: path, reason: "cannot be read")
    }
    guard let modules = (try? JSONSerialization.jsonObject(with: data)) as? [[String: Any]] else {
      throw CheckpointError.invalidModules(path: path, reason: "is not a JSON list of objects")
    }
    guard
      let module = modules.first(where: { ($0["type"] as? String)?.hasSuffix(".Transformer") == true }),
      let folder = module["path"] as? String, !folder.isEmpty, !folder.hasPrefix("/"),
      !folder.split(separator: "/").contains("..")
    else {
      throw CheckpointError.invalidModules(path: path, reason: "names no Transformer module folder")
    }
    return ((path as NSString).deletingLastPathComponent as NSString).appendingPathComponent(folder)
  }

  /// Reads the file open at `descriptor`, which this closes.
  private static func openFile(_ path: String, descriptor: Int32) throws -> (CheckpointFormat, any TensorSource) {
    defer { close(descriptor) }
    var status = stat()
    if fstat(descriptor, &status) != 0 {
      throw CheckpointError.system(path: path, operation: "fstat", errno: errno)
    }
    let isHDF5Name = path.hasSuffix(".h5") || path.hasSuffix(".hdf5")
    if (status.st_mode & S_IFMT) != S_IFREG {
      let kind = describeFileType(status.st_mode)
      if path.hasSuffix(".zst") { throw CheckpointError.notRegularFile(path: path, kind: kind, format: "zstd") }
      if path.hasSuffix(".json") { throw CheckpointError.notRegularFile(path: path, kind: kind, format: "a shard index") }
      if isHDF5Name { throw CheckpointError.notRegularFile(path: path, kind: kind, format: "HDF5") }
      if path.hasSuffix(".gguf") { throw CheckpointError.notRegularFile(path: path, kind: kind, format: "GGUF") }
      return (.safetensors, try SafetensorsFile(descriptor: descriptor, location: path))
    }
    if path.hasSuffix(".zst") {
      return try openCompressed(path)
    }
    if path.hasSuffix(".json") {
      return (.shardedSafetensors, try ShardedCheckpoint(indexPath: path))
    }
    var head = [UInt8](repeating: 0, count: 8)
    let got = head.withUnsafeMutableBytes { pread(descriptor, $0.baseAddress, 8, 0) }
    head = Array(head.prefix(max(got, 0)))
    if head == hdf5Signature {
      return (.hdf5, try HDF5File(path: path))
    }
    if head.starts(with: Array("GGUF".utf8)) {
      return (.gguf, try GGUFFile(path: path))
    }
    do {
      return (.safetensors, try SafetensorsFile(descriptor: descriptor, location: path))
    } catch let error as SafetensorsError {
      // A name that promises another format gets a message about that format.
      guard let expected = isHDF5Name ? "HDF5" : path.hasSuffix(".gguf") ? "GGUF" : nil else { throw error }
      var looks = looksLike(head)
      if case .foreignFormat(_, let format) = error { looks = format }
      throw CheckpointError.unrecognised(path: path, expected: expected, looksLike: looks)
    }
  }

  /// What the first bytes of a file that is no checkpoint look like, for messages.
  private static func looksLike(_ head: [UInt8]) -> String? {
    guard !head.isEmpty else { return "is empty" }
    if head.allSatisfy({ (0x20...0x7E).contains($0) || [0x09, 0x0A, 0x0D].contains($0) }) {
      return "starts with text ('\(String(decoding: head, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines))')"
    }
    return nil
  }

  private static func describeFileType(_ mode: mode_t) -> String {
    switch mode & S_IFMT {
    case S_IFIFO: "a named pipe"
    case S_IFCHR: "a character device"
    case S_IFBLK: "a block device"
    case S_IFSOCK: "a socket"
    case S_IFDIR: "a folder"
    default: "not a regular file"
    }
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

  private static func readConfig(inFolder folder: String) -> (Data?, String?) {
    let path = (folder as NSString).appendingPathComponent("config.json")
    // A config is small: a pipe or device in its place (/dev/zero) is read no further, and one
    // too large reads as text the config parser refuses, naming the file.
    do {
      return (try SideFile.read(path, limit: 16 << 20), path)
    } catch .tooLarge(let limit) {
      return (Data("config.json is larger than \(limit) bytes".utf8), path)
    } catch {
      return (nil, nil)
    }
  }
}
