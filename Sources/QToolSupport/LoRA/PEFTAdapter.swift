import Foundation
import QCompute
import QFormats

/// Where one LoRA pair sits: the decoder layer and the module path inside it
/// (`self_attn.q_proj`, `mlp.down_proj`).
public struct LoRAModuleKey: Hashable, Sendable, Comparable, CustomStringConvertible {
  public var layer: Int
  public var module: String

  public init(layer: Int, module: String) {
    self.layer = layer
    self.module = module
  }

  /// The last path component, the name `target_modules` uses (`q_proj`).
  public var kind: String { module.split(separator: ".").last.map(String.init) ?? module }
  /// The base weight the pair updates, as in the model's safetensors.
  public var baseTensor: String { "model.layers.\(layer).\(module).weight" }
  public var description: String { "layers.\(layer).\(module)" }

  public static func < (lhs: Self, rhs: Self) -> Bool {
    (lhs.layer, lhs.module) < (rhs.layer, rhs.module)
  }
}

/// A PEFT LoRA adapter: `adapter_config.json` plus `adapter_model.safetensors`.
///
/// Keys look like `base_model.model.model.layers.N.self_attn.q_proj.lora_A.weight`, optionally
/// with the adapter name (`lora_A.default.weight`); A is rank × in and B is out × rank.
public struct PEFTAdapter: Sendable {
  public var folder: String
  /// The config as read, so that fields this tool does not know survive the move.
  public var config: [String: JSONValue]
  public var rank: Int
  public var alpha: Double
  public var useRSLoRA: Bool
  /// The text before the layer index in every key (`base_model.model.model.layers.`).
  public var keyPrefix: String
  public var modules: [LoRAModuleKey: LoRAFactors]
  /// Keys outside the decoder layers' linear modules (such as `lm_head` or embeddings).
  public var otherKeys: [String]

  /// `lora_alpha / r`, or `lora_alpha / √r` with rsLoRA.
  public var scale: Double {
    useRSLoRA ? alpha / Double(rank).squareRoot() : alpha / Double(rank)
  }

  public init(
    folder: String, config: [String: JSONValue], rank: Int, alpha: Double, useRSLoRA: Bool,
    keyPrefix: String, modules: [LoRAModuleKey: LoRAFactors], otherKeys: [String] = []
  ) {
    self.folder = folder
    self.config = config
    self.rank = rank
    self.alpha = alpha
    self.useRSLoRA = useRSLoRA
    self.keyPrefix = keyPrefix
    self.modules = modules
    self.otherKeys = otherKeys
  }

  /// Reads an adapter folder.
  /// - Throws: `LoraRebaseError.adapter` for missing files, a non-LoRA config, rank patterns, keys
  ///   without a partner, or factors whose shapes disagree with `r`.
  public static func read(folder: String) throws -> PEFTAdapter {
    let configPath = (folder as NSString).appendingPathComponent("adapter_config.json")
    let data: Data
    do {
      data = try SideFile.read(configPath, limit: 16 << 20)
    } catch {
      throw LoraRebaseError.adapter(path: configPath, detail: "Cannot read the adapter config: \(error)")
    }
    let settings = try PEFTAdapterConfig(data: data, path: configPath)
    let weightsPath = (folder as NSString).appendingPathComponent("adapter_model.safetensors")
    let exists: Bool
    do {
      exists = try SideFile.exists(weightsPath)
    } catch {
      throw LoraRebaseError.adapter(path: weightsPath, detail: "Cannot read the adapter weights: \(error)")
    }
    guard exists else {
      throw LoraRebaseError.adapter(path: weightsPath, detail: "No adapter_model.safetensors")
    }
    let file = try SafetensorsFile(path: weightsPath)
    var halves: [LoRAModuleKey: (a: Matrix<Double>?, b: Matrix<Double>?)] = [:]
    var prefix: String?
    var others: [String] = []
    let rank = settings.rank
    for info in file.tensors {
      guard let parsed = parseKey(info.name) else {
        others.append(info.name)
        continue
      }
      if let prefix, prefix != parsed.prefix {
        throw LoraRebaseError.adapter(
          path: weightsPath, detail: "Tensor '\(info.name)' does not start with '\(prefix)'")
      }
      prefix = parsed.prefix
      guard info.shape.count == 2 else {
        throw LoraRebaseError.adapter(
          path: weightsPath, detail: "Tensor '\(info.name)' has \(info.shape.count) dimensions, not 2")
      }
      let values = try file.floats(of: info.name)
      // A NaN or infinity would surface as a LAPACK failure deep in the move; name it here.
      if let flat = values.firstIndex(where: { !$0.isFinite }), info.shape[1] > 0 {
        let index = [flat / info.shape[1], flat % info.shape[1]]
        throw LoraRebaseError.adapter(
          path: weightsPath,
          detail: "Tensor '\(info.name)' holds \(values[flat]) at index \(index) (flat index \(flat)); LoRA factors must be finite")
      }
      let matrix = try Matrix<Double>(
        rows: info.shape[0], columns: info.shape[1], elements: values.map(Double.init))
      let expectedRank = parsed.isA ? matrix.rows : matrix.columns
      guard expectedRank == rank else {
        throw LoraRebaseError.adapter(
          path: weightsPath,
          detail: "Tensor '\(info.name)' is \(matrix.rows) x \(matrix.columns), not of rank r = \(rank)")
      }
      if parsed.isA { halves[parsed.key, default: (nil, nil)].a = matrix } else {
        halves[parsed.key, default: (nil, nil)].b = matrix
      }
    }
    var modules: [LoRAModuleKey: LoRAFactors] = [:]
    for (key, pair) in halves {
      guard let a = pair.a, let b = pair.b else {
        throw LoraRebaseError.adapter(
          path: weightsPath, detail: "'\(key)' has lora_\(pair.a == nil ? "B" : "A") but no lora_\(pair.a == nil ? "A" : "B")")
      }
      modules[key] = try LoRAFactors(a: a, b: b)
    }
    if modules.isEmpty && others.isEmpty {
      throw LoraRebaseError.adapter(path: weightsPath, detail: "No LoRA tensors")
    }
    return PEFTAdapter(
      folder: folder, config: settings.object, rank: settings.rank, alpha: settings.alpha,
      useRSLoRA: settings.useRSLoRA,
      keyPrefix: prefix ?? "base_model.model.model.layers.", modules: modules, otherKeys: others)
  }

  /// Splits `…layers.N.<module>.lora_A[.name].weight` into its parts; nil for other keys.
  static func parseKey(_ name: String) -> (prefix: String, key: LoRAModuleKey, isA: Bool)? {
    guard let layersRange = name.range(of: "layers.", options: .backwards) else { return nil }
    let prefix = String(name[..<layersRange.upperBound])
    let rest = name[layersRange.upperBound...]
    guard let dot = rest.firstIndex(of: "."), let layer = Int(rest[..<dot]) else { return nil }
    let tail = rest[rest.index(after: dot)...]
    for (marker, isA) in [(".lora_A.", true), (".lora_B.", false)] {
      if let range = tail.range(of: marker), tail.hasSuffix("weight") {
        let module = String(tail[..<range.lowerBound])
        return (prefix, LoRAModuleKey(layer: layer, module: module), isA)
      }
    }
    return nil
  }

  /// The tensor names this adapter writes for one module (PEFT's saved form, no adapter name).
  public func tensorNames(for key: LoRAModuleKey) -> (a: String, b: String) {
    let base = "\(keyPrefix)\(key.layer).\(key.module)"
    return ("\(base).lora_A.weight", "\(base).lora_B.weight")
  }

  /// Writes the adapter to the folder at `path` atomically: into a temporary sibling folder,
  /// renamed into place once complete. An existing folder is replaced only with `replace`, and
  /// never one of `inputs` (see `OutputDestination`).
  public func write(to path: String, replace: Bool = false, inputs: [String] = []) throws {
    let output: OutputDestination
    do {
      output = try OutputDestination(path: path, kind: .folder, replace: replace, inputs: inputs)
    } catch {
      throw LoraRebaseError.outputRefused(error)
    }
    try write(to: output)
  }

  /// Writes the adapter to a checked output folder atomically.
  public func write(to output: OutputDestination) throws {
    let stage: StagedFolder
    do { stage = try StagedFolder(output) } catch {
      throw LoraRebaseError.output(path: output.path, detail: "\(error)")
    }
    let staging = stage.temporary
    do {
      let keys = modules.keys.sorted()
      var plan: [TensorInfo] = []
      for key in keys {
        guard let factors = modules[key] else { continue }
        let names = tensorNames(for: key)
        plan.append(TensorInfo(name: names.a, dtype: .f32, shape: [factors.a.rows, factors.a.columns]))
        plan.append(TensorInfo(name: names.b, dtype: .f32, shape: [factors.b.rows, factors.b.columns]))
      }
      let writer = try SafetensorsWriter(
        path: (staging as NSString).appendingPathComponent("adapter_model.safetensors"), plan: plan)
      var values: [String: Matrix<Double>] = [:]
      for key in keys {
        guard let factors = modules[key] else { continue }
        let names = tensorNames(for: key)
        values[names.a] = factors.a
        values[names.b] = factors.b
      }
      for info in writer.order {
        guard let matrix = values[info.name] else { continue }
        let floats = matrix.elements.map(Float.init)
        try floats.withUnsafeBufferPointer { try writer.append(name: info.name, converting: $0) }
      }
      try writer.finish()
      let encoder = JSONEncoder()
      encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
      let configData = try encoder.encode(JSONValue.object(config))
      try configData.write(
        to: URL(fileURLWithPath: (staging as NSString).appendingPathComponent("adapter_config.json")))
      try stage.commit()
    } catch {
      stage.abandon()
      if case ConvertError.output(let refusal) = error { throw LoraRebaseError.outputRefused(refusal) }
      throw LoraRebaseError.output(path: output.path, detail: "\(error)")
    }
  }
}
