import Dispatch
import Foundation
import QCompute
import QFormats

#if canImport(Glibc)
  import Glibc
#endif

/// Writes a model folder atomically: into a temporary folder beside the output, renamed into
/// place at the end by `OutputDestination`, which checked the path against the inputs first.
///
/// SIGINT, SIGTERM and SIGHUP remove the temporary folder (`TemporaryCleanup`); a run killed
/// outright leaves it for `OutputDestination.removeStaleTemporaries()` to clear on the next run.
public final class StagedFolder: Sendable {
  public let output: OutputDestination
  public let temporary: String

  /// The output's absolute path.
  public var destination: String { output.resolvedPath }

  /// Checks the output path against `inputs` and creates the temporary folder; an existing
  /// output is replaced only with `force`, and only as `OutputDestination` allows.
  public convenience init(destination: String, force: Bool, inputs: [String]) throws(ConvertError) {
    let output: OutputDestination
    do {
      output = try OutputDestination(path: destination, kind: .folder, replace: force, inputs: inputs)
    } catch {
      throw .output(error)
    }
    try self.init(output)
  }

  /// Creates the temporary folder for a checked output folder.
  public init(_ output: OutputDestination) throws(ConvertError) {
    self.output = output
    output.removeStaleTemporaries()
    temporary = output.parent + "/." + output.name + ".tmp-\(getpid())"
    try? FileManager.default.removeItem(atPath: temporary)
    try TemporaryCleanup.register(temporary) { [temporary] () throws(ConvertError) in
      do { try FileManager.default.createDirectory(atPath: temporary, withIntermediateDirectories: true) } catch {
        throw .fileSystem(path: temporary, reason: "cannot create the temporary folder")
      }
    }
  }

  public func path(_ name: String) -> String { temporary + "/" + name }

  /// Moves the finished folder into place; an old output is swapped out and removed.
  public func commit() throws(ConvertError) {
    do { try output.install(from: temporary) } catch {
      abandon()
      throw .output(error)
    }
    TemporaryCleanup.unregister(temporary)
  }

  public func abandon() {
    try? FileManager.default.removeItem(atPath: temporary)
    TemporaryCleanup.unregister(temporary)
  }
}

/// Progress on stderr: an updating line with rate and ETA on a terminal, a line per tensor otherwise.
public struct ConvertProgress {
  let quiet: Bool
  let terminal: Bool
  let totalBytes: Int
  var doneBytes = 0
  var count = 0
  let totalCount: Int
  let start = Date()

  public init(quiet: Bool, totalBytes: Int, totalCount: Int) {
    self.quiet = quiet
    terminal = isatty(2) == 1
    self.totalBytes = totalBytes
    self.totalCount = totalCount
  }

  mutating func advance(name: String, bytes: Int, action: String) {
    doneBytes += bytes
    count += 1
    guard !quiet else { return }
    if terminal {
      let elapsed = max(Date().timeIntervalSince(start), 1e-6)
      let rate = Double(doneBytes) / elapsed
      let eta = rate > 0 ? Double(totalBytes - doneBytes) / rate : 0
      FileHandleOutput.writeStderr(
        String(format: "\r\u{1B}[K[%d/%d] %.1f MB/s, ETA %.0fs  %@", count, totalCount, rate / 1e6, eta, name))
    } else {
      FileHandleOutput.writeStderr("[\(count)/\(totalCount)] \(name): \(action)\n")
    }
  }

  func finish() {
    if !quiet, terminal { FileHandleOutput.writeStderr("\n") }
  }
}

/// Runs a conversion into a staged folder: the pack, config.json and the side files.
public enum ConvertJob {
  /// Files of a model folder that are not weights and are copied as they are.
  static func sideFiles(of folder: String) -> [String] {
    let names = (try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? []
    return names.sorted().filter { name in
      !name.hasPrefix(".") && !name.hasSuffix(".safetensors") && name != "model.safetensors.index.json"
        && name != "config.json" && !name.hasSuffix(".h5") && !name.hasSuffix(".gguf")
        && !name.hasSuffix(".bin") && !name.hasSuffix(".pt")
    }
  }

  /// Copies side files and writes config.json, with `quantization` set or removed.
  public static func writeSideFiles(checkpoint: Checkpoint, into stage: StagedFolder, quantization: [String: Any]?) throws {
    if let folder = checkpoint.folder {
      for name in sideFiles(of: folder) {
        // Side files are plain files; a folder of the same kind of name is not ours to copy.
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: folder + "/" + name, isDirectory: &isDirectory),
          !isDirectory.boolValue
        else { continue }
        try FileManager.default.copyItem(atPath: folder + "/" + name, toPath: stage.path(name))
      }
    }
    var config: [String: Any] = [:]
    if let data = checkpoint.configData, let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any] {
      config = object
    }
    if let quantization {
      config["quantization"] = quantization
    } else {
      config.removeValue(forKey: "quantization")
    }
    // The output is plain or a qpack, never in the input's scheme (an MLX folder's mirror of its
    // `quantization` block, an HF quantizer's settings), so that description no longer applies.
    config.removeValue(forKey: "quantization_config")
    guard checkpoint.configData != nil || quantization != nil else { return }
    let data = try JSONSerialization.data(withJSONObject: config, options: [.prettyPrinted, .sortedKeys])
    try data.write(to: URL(fileURLWithPath: stage.path("config.json")))
  }

  /// The `quantization` block: main settings plus an entry per module that differs.
  public static func quantizationBlock(plan: ConvertPlan) -> [String: Any] {
    let main = plan.settings.mainSpec
    var block: [String: Any] = [
      "bits": main.bits, "group_size": main.groupSize.length(columns: 0), "method": plan.settings.method.rawValue,
      "grid": main.grid.rawValue, "format": "qpack", "qpack_version": 1,
    ]
    for entry in plan.entries where entry.info.shape.count >= 2 && entry.info.dtype.isFloatingPoint {
      let module = entry.info.name.hasSuffix(".weight") ? String(entry.info.name.dropLast(".weight".count)) : entry.info.name
      guard let description = entry.description else {
        block[module] = false
        continue
      }
      guard let spec = entry.spec, spec != main else { continue }
      block[module] = [
        "bits": description.bits, "group_size": description.groupSize, "grid": description.grid.rawValue,
        "method": description.method.rawValue,
      ]
    }
    return block
  }

  /// Writes `source` as a plain checkpoint, floating-point tensors in `dtype`.
  public static func writePlain(source: any TensorSource, dtype: DType, to path: String, quiet: Bool) throws {
    let plan = source.tensors.map { info in
      info.dtype.isFloatingPoint ? TensorInfo(name: info.name, dtype: dtype, shape: info.shape) : info
    }
    let writer = try SafetensorsWriter(path: path, plan: plan, order: .asGiven)
    var progress = ConvertProgress(
      quiet: quiet, totalBytes: plan.reduce(0) { $0 + $1.byteCount }, totalCount: plan.count)
    for (original, target) in zip(source.tensors, plan) {
      if original.dtype.isFloatingPoint {
        let values: [Float]
        if let packed = source as? PackedCheckpoint {
          values = try packed.dequantizedFloats(of: original.name)
        } else {
          values = try source.floats(of: original.name)
        }
        // A finite value past the dtype's range would be written as infinity.
        let limit = PackEncoder.largestFinite(in: dtype)
        if let position = values.firstIndex(where: { $0.isFinite && abs($0) > limit }) {
          var index = [Int](repeating: 0, count: original.shape.count)
          var rest = position
          for axis in stride(from: original.shape.count - 1, through: 0, by: -1) where original.shape[axis] > 0 {
            index[axis] = rest % original.shape[axis]
            rest /= original.shape[axis]
          }
          throw ConvertError.outOfRange(
            location: source.location, tensor: original.name, index: index, value: values[position], dtype: dtype.rawValue)
        }
        try values.withUnsafeBufferPointer { try writer.append(name: target.name, converting: $0) }
      } else {
        try source.withRawBytes(of: original.name) { try writer.append(name: target.name, bytes: $0) }
      }
      progress.advance(name: target.name, bytes: target.byteCount, action: "\(target.dtype.rawValue)")
    }
    try writer.finish()
    progress.finish()
  }

  /// The dry-run table: one row per tensor, then totals.
  public static func planTable(_ plan: ConvertPlan) throws -> String {
    var table = TextTable(
      headers: ["tensor", "action", "bits", "group", "before", "after"],
      alignments: [.left, .left, .right, .right, .right, .right])
    for entry in plan.entries {
      if let description = entry.description {
        table.append([
          entry.info.name, "\(description.grid.rawValue) \(description.method.rawValue)", "\(description.bits)",
          "\(description.groupSize)", "\(entry.bytesBefore)", "\(entry.bytesAfter)",
        ])
      } else {
        table.append([entry.info.name, "keep (\(entry.reason))", "-", "-", "\(entry.bytesBefore)", "\(entry.bytesAfter)"])
      }
    }
    var text = table.render()
    text += String(
      format: "total: %d tensors, %d bytes -> %d bytes, %.4f bits per weight, output file %d bytes\n",
      plan.entries.count, plan.bytesBefore, plan.bytesAfter, plan.bitsPerWeight, try plan.fileSize())
    return text
  }
}
