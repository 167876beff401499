import Foundation
import QFormats

extension MLXExport {
  /// Side files mlx_lm keeps beside the weights: tokenizer, chat template, generation defaults.
  static let sideFileExtensions: Set<String> = ["json", "txt", "model", "tiktoken", "jinja"]
  /// Files that the export writes itself, or that hold weights in another layout.
  static let replacedFiles: Set<String> = ["config.json", "model.safetensors.index.json"]

  static func decodeConfig(_ data: Data, location: String) throws -> [String: JSONValue] {
    guard let object = try? JSONDecoder().decode(JSONValue.self, from: data).objectValue else {
      throw ExportError.invalidConfig(
        location: location, key: "config.json", reason: "is not a JSON object")
    }
    return object
  }

  /// `{"group_size": g, "bits": b, "mode": "affine"}`, mlx_lm's per-model and per-module entry.
  static func quantizationEntry(_ settings: Settings) -> JSONValue {
    .object([
      "group_size": .number(Double(settings.groupSize)), "bits": .number(Double(settings.bits)),
      "mode": .string("affine"),
    ])
  }

  /// The source config plus `quantization` (mirrored as `quantization_config`), with an entry
  /// for every module whose settings differ from the default and `false` for every module a
  /// rule keeps, which mlx_lm's `load` reads per module; keys sorted as mlx_lm saves them.
  static func writeConfig(
    _ config: [String: JSONValue]?, plan: [PlanEntry], bits: Int, groupSize: Int,
    location: String, to path: String
  ) throws {
    var output = config ?? [:]
    output.removeValue(forKey: "_name_or_path")
    guard case .object(var quantization) = quantizationEntry((bits, groupSize)) else { return }
    for entry in plan {
      if entry.keptByChoice {
        quantization[entry.module] = .bool(false)
        continue
      }
      guard let settings = entry.settings,
        settings.bits != bits || settings.groupSize != groupSize
      else { continue }
      quantization[entry.module] = quantizationEntry(settings)
    }
    output["quantization"] = .object(quantization)
    output["quantization_config"] = .object(quantization)
    try writeJSON(.object(output), to: path)
  }

  /// mlx_lm's index: total byte size, the logical parameter count, every tensor's file.
  static func writeIndex(
    outputs: [TensorInfo], plan: [PlanEntry], shardOf: [String: String], to path: String
  ) throws {
    let totalSize = outputs.reduce(0) { $0 + $1.byteCount }
    let parameters = plan.reduce(0) { $0 + $1.source.elementCount }
    var weightMap: [String: JSONValue] = [:]
    for tensor in outputs { weightMap[tensor.name] = .string(shardOf[tensor.name] ?? "model.safetensors") }
    let index: JSONValue = .object([
      "metadata": .object([
        "total_size": .number(Double(totalSize)),
        "total_parameters": .number(Double(parameters)),
      ]),
      "weight_map": .object(weightMap),
    ])
    try writeJSON(index, to: path)
  }

  static func writeJSON(_ value: JSONValue, to path: String) throws {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
    do {
      var data = try encoder.encode(value)
      data.append(0x0A)
      try data.write(to: URL(fileURLWithPath: path))
    } catch {
      throw ExportError.output(path: path, reason: "cannot write: \(error)")
    }
  }

  /// Copies tokenizer and other small side files (not weights, not the files written here).
  static func copySideFiles(from folder: String, to outputFolder: String) throws {
    let manager = FileManager.default
    let names: [String]
    do {
      names = try manager.contentsOfDirectory(atPath: folder).sorted()
    } catch {
      throw ExportError.output(path: folder, reason: "cannot list side files: \(error)")
    }
    for name in names where isSideFile(name) {
      let from = folder + "/" + name
      var isDirectory: ObjCBool = false
      guard manager.fileExists(atPath: from, isDirectory: &isDirectory), !isDirectory.boolValue
      else { continue }
      let to = outputFolder + "/" + name
      do {
        if manager.fileExists(atPath: to) { try manager.removeItem(atPath: to) }
        try manager.copyItem(atPath: from, toPath: to)
      } catch {
        throw ExportError.output(path: to, reason: "cannot copy '\(from)': \(error)")
      }
    }
  }

  static func isSideFile(_ name: String) -> Bool {
    guard !name.hasPrefix("."), !replacedFiles.contains(name),
      !name.hasSuffix(".safetensors.index.json"), !name.hasSuffix(".bin.index.json"),
      let dot = name.lastIndex(of: ".")
    else { return false }
    return sideFileExtensions.contains(String(name[name.index(after: dot)...]))
  }
}
