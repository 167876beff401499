import Foundation
import QCompute
import QFormats

/// Choices for one move.
public struct LoraRebaseOptions: Sendable {
  /// Use the least-squares head and neuron maps, exact when old and new are the same model.
  public var normalize: Bool
  /// Leave out modules that cannot be moved instead of failing.
  public var skipUnsupported: Bool
  /// A layer (and head) mapping that replaces the weight CKA and Hungarian matching.
  public var mapping: LoraMappingFile?

  public init(normalize: Bool = false, skipUnsupported: Bool = false, mapping: LoraMappingFile? = nil) {
    self.normalize = normalize
    self.skipUnsupported = skipUnsupported
    self.mapping = mapping
  }
}

/// The moved adapter, the report and the CKA matrix behind the layer map (nil with a file).
public struct LoraRebaseResult: Sendable {
  public var adapter: PEFTAdapter
  public var report: LoraRebaseReport
  public var cka: Matrix<Double>?
}

/// A base model's tensors and the attention hyper-parameters the transforms need.
struct LoraBaseModel {
  let path: String
  let checkpoint: Checkpoint
  let hidden: Int
  let layers: Int
  let heads: Int
  let kvHeads: Int
  let headDim: Int
  let vocabulary: Int?
  let name: String

  init(path: String) throws {
    self.path = path
    checkpoint = try Checkpoint.open(path)
    guard let data = checkpoint.configData else {
      throw LoraRebaseError.baseModel(path: path, detail: "No config.json beside the weights")
    }
    let config = try ModelConfig(data: data, location: checkpoint.configPath ?? path)
    guard let hidden = config.hiddenSize, let layers = config.numHiddenLayers,
      let heads = config.numAttentionHeads, heads > 0
    else {
      throw LoraRebaseError.baseModel(
        path: checkpoint.configPath ?? path,
        detail: "config.json lacks hidden_size, num_hidden_layers or num_attention_heads")
    }
    self.hidden = hidden
    self.layers = layers
    self.heads = heads
    kvHeads = config.numKeyValueHeads ?? heads
    headDim = config.headDim ?? hidden / heads
    vocabulary = config.vocabSize
    let folderName = ((checkpoint.folder ?? path) as NSString).standardizingPath
    name = config.raw["_name_or_path"]?.stringValue ?? (folderName as NSString).lastPathComponent
  }

  var tokenizerPath: String {
    ((checkpoint.folder ?? path) as NSString).appendingPathComponent("tokenizer.json")
  }

  func shape(of name: String) -> [Int]? { checkpoint.source.info(named: name)?.shape }

  func matrix(_ name: String) throws -> Matrix<Double> {
    guard let shape = shape(of: name), shape.count == 2 else {
      throw LoraRebaseError.baseModel(path: path, detail: "No 2-D tensor '\(name)'")
    }
    return try Matrix(
      rows: shape[0], columns: shape[1],
      elements: try checkpoint.source.floats(of: name).map(Double.init))
  }
}

/// The whole move: LoRASuite's transfer matrix, layer and head allocation and per-module
/// transforms, then the QR+SVD refactoring to the old rank.
public enum LoraRebase {
  static let attentionKinds: Set<String> = ["q_proj", "k_proj", "v_proj", "o_proj"]
  static let mlpKinds: Set<String> = ["gate_proj", "up_proj", "down_proj"]

  public static func run(
    oldBase oldPath: String, newBase newPath: String, adapter adapterPath: String,
    options: LoraRebaseOptions = LoraRebaseOptions()
  ) throws -> LoraRebaseResult {
    let old = try LoraBaseModel(path: oldPath)
    let new = try LoraBaseModel(path: newPath)
    let adapter = try PEFTAdapter.read(folder: adapterPath)
    var dropped: [String] = []

    // Supported modules, each checked against OLD_BASE.
    for other in adapter.otherKeys {
      guard options.skipUnsupported else { throw LoraRebaseError.unsupportedModule(key: other) }
      dropped.append(other)
    }
    var modules: [LoRAModuleKey: LoRAFactors] = [:]
    for (key, factors) in adapter.modules.sorted(by: { $0.key < $1.key }) {
      let section = key.module.split(separator: ".").first.map(String.init)
      let supported =
        (attentionKinds.contains(key.kind) && section == "self_attn")
        || (mlpKinds.contains(key.kind) && section == "mlp")
      guard supported else {
        guard options.skipUnsupported else {
          throw LoraRebaseError.unsupportedModule(key: adapter.tensorNames(for: key).a)
        }
        dropped.append(key.description)
        continue
      }
      let baseShape = old.shape(of: key.baseTensor)
      guard baseShape == [factors.b.rows, factors.a.columns] else {
        throw LoraRebaseError.baseMismatch(
          key: adapter.tensorNames(for: key).a, adapterShape: [factors.b.rows, factors.a.columns],
          baseTensor: key.baseTensor, baseShape: baseShape)
      }
      modules[key] = factors
    }

    // Hidden transfer W_x.
    let transfer: Matrix<Double>
    var transferReport = LoraRebaseReport.Transfer(
      kind: "identity", oldHidden: old.hidden, newHidden: new.hidden)
    if old.hidden == new.hidden && old.vocabulary != nil && old.vocabulary == new.vocabulary {
      transfer = .identity(old.hidden)
    } else {
      let shared = try SharedVocabulary(
        oldTokenizer: old.tokenizerPath, newTokenizer: new.tokenizerPath)
      let oldEmbeddings = try old.matrix("model.embed_tokens.weight")
      let newEmbeddings = try new.matrix("model.embed_tokens.weight")
      let pairs = shared.pairs.filter {
        $0.old < oldEmbeddings.rows && $0.new < newEmbeddings.rows
      }
      let needed = 2 * old.hidden
      guard pairs.count >= needed else {
        throw LoraRebaseError.tooFewSharedTokens(
          shared: pairs.count, needed: needed, old: old.tokenizerPath, new: new.tokenizerPath)
      }
      var eo = Matrix<Double>(rows: pairs.count, columns: old.hidden)
      var en = Matrix<Double>(rows: pairs.count, columns: new.hidden)
      for (row, pair) in pairs.enumerated() {
        for c in 0..<old.hidden { eo[row, c] = oldEmbeddings[pair.old, c] }
        for c in 0..<new.hidden { en[row, c] = newEmbeddings[pair.new, c] }
      }
      let solved = try LoRATransfer.hiddenTransfer(oldEmbeddings: eo, newEmbeddings: en)
      transfer = solved.transfer
      transferReport = LoraRebaseReport.Transfer(
        kind: "least-squares", oldHidden: old.hidden, newHidden: new.hidden,
        sharedTokens: pairs.count, rank: solved.rank)
    }

    // Layer allocation.
    var layers: [Int?]
    var cka: Matrix<Double>?
    if let mapping = options.mapping {
      layers = (0..<new.layers).map { mapping.layers[$0] }
      for case let (newLayer, oldLayer?) in layers.enumerated() where oldLayer >= old.layers {
        throw LoraRebaseError.mapping(
          path: "--mapping",
          detail: "new layer \(newLayer) maps to old layer \(oldLayer), but OLD_BASE has \(old.layers)")
      }
    } else {
      func descriptors(_ model: LoraBaseModel) throws -> [Matrix<Double>] {
        try (0..<model.layers).map { layer in
          try LoRATransfer.hstack([
            try model.matrix("model.layers.\(layer).self_attn.o_proj.weight"),
            try model.matrix("model.layers.\(layer).mlp.down_proj.weight"),
          ])
        }
      }
      let matrix = try CKAMatrix.fromWeights(
        old: try descriptors(old), new: try descriptors(new),
        transfer: old.hidden == new.hidden && transferReport.kind == "identity" ? nil : transfer)
      cka = matrix
      layers = LayerMapping.orderPreserving(matrix)
    }

    // Per mapped layer: heads, then modules.
    let oldByLayer = Dictionary(grouping: modules.keys, by: \.layer)
    var moved: [LoRAModuleKey: LoRAFactors] = [:]
    var headReports: [LoraRebaseReport.Heads] = []
    var moduleReports: [LoraRebaseReport.Module] = []
    let mappedOld = Set(layers.compactMap { $0 })
    for (layer, keys) in oldByLayer where !mappedOld.contains(layer) {
      dropped += keys.sorted().map(\.description)
    }
    for (newLayer, oldLayer) in layers.enumerated() {
      guard let oldLayer, let keys = oldByLayer[oldLayer]?.sorted() else { continue }
      func weight(_ model: LoraBaseModel, _ layer: Int, _ module: String) throws -> Matrix<Double> {
        try model.matrix("model.layers.\(layer).\(module).weight")
      }
      var headMap: [Int?] = []
      if keys.contains(where: { attentionKinds.contains($0.kind) }) {
        if let fromFile = options.mapping?.heads[newLayer] {
          headMap = (0..<new.heads).map { fromFile[$0] }
          headReports.append(.init(newLayer: newLayer, oldLayer: oldLayer, newToOld: headMap))
        } else {
          let names = ["q_proj", "k_proj", "v_proj", "o_proj"].map { "self_attn.\($0)" }
          let o = try names.map { try weight(old, oldLayer, $0) }
          let n = try names.map { try weight(new, newLayer, $0) }
          let result = try HeadMapping.map(
            oldQ: o[0], oldK: o[1], oldV: o[2], oldO: o[3], newQ: n[0], newK: n[1], newV: n[2],
            newO: n[3], heads: (old.heads, new.heads), kvHeads: (old.kvHeads, new.kvHeads),
            transfer: transfer)
          headMap = result.newToOld
          headReports.append(
            .init(
              newLayer: newLayer, oldLayer: oldLayer, newToOld: headMap,
              similarity: result.totalSimilarity))
        }
      }
      var neuronMap: Matrix<Double>?
      if options.normalize && keys.contains(where: { mlpKinds.contains($0.kind) }) {
        func stack(_ model: LoraBaseModel, _ layer: Int) throws -> [Matrix<Double>] {
          [
            try weight(model, layer, "mlp.up_proj"), try weight(model, layer, "mlp.gate_proj"),
            try weight(model, layer, "mlp.down_proj").transposed(),
          ]
        }
        neuronMap = try LoRATransfer.neuronMap(
          old: try stack(old, oldLayer), new: try stack(new, newLayer), transfer: transfer)
      }
      for key in keys {
        guard let factors = modules[key] else { continue }
        let newKey = LoRAModuleKey(layer: newLayer, module: key.module)
        let oldWeight = try weight(old, oldLayer, key.module)
        let newWeight = try weight(new, newLayer, key.module)
        let result: LoRAFactors
        switch key.kind {
        case "q_proj", "k_proj", "v_proj":
          let perBlock =
            key.kind == "q_proj"
            ? (old: 1, new: 1) : (old: old.heads / old.kvHeads, new: new.heads / new.kvHeads)
          result = try LoRATransfer.rowBlocks(
            factors, oldWeight: oldWeight, newWeight: newWeight,
            headDim: (old.headDim, new.headDim), queriesPerBlock: perBlock, newToOld: headMap,
            transfer: transfer, normalized: options.normalize)
        case "o_proj":
          result = try LoRATransfer.columnBlocks(
            factors, oldWeight: oldWeight, newWeight: newWeight,
            headDim: (old.headDim, new.headDim), newToOld: headMap, transfer: transfer,
            normalized: options.normalize)
        case "down_proj":
          result =
            if let neuronMap {
              try LoRATransfer.contracting(factors, neuronMap: neuronMap, transfer: transfer)
            } else {
              try LoRATransfer.contracting(
                factors, oldWeight: oldWeight, newWeight: newWeight, transfer: transfer)
            }
        default:  // up_proj, gate_proj
          result =
            if let neuronMap {
              try LoRATransfer.expanding(factors, neuronMap: neuronMap, transfer: transfer)
            } else {
              try LoRATransfer.expanding(
                factors, oldWeight: oldWeight, newWeight: newWeight, transfer: transfer)
            }
        }
        let refactored = try result.refactored(rank: adapter.rank)
        moved[newKey] = refactored
        let before = try factors.productNorm() * adapter.scale
        let after = try refactored.productNorm() * adapter.scale
        moduleReports.append(
          .init(
            newLayer: newLayer, oldLayer: oldLayer, module: key.module, normBefore: before,
            normAfter: after, kept: before > 0 ? after / before : 0))
      }
    }

    var config = adapter.config
    config["base_model_name_or_path"] = .string(new.name)
    config["r"] = .number(Double(adapter.rank))
    let kinds = Set(moved.keys.map(\.kind)).sorted()
    config["target_modules"] = .array(kinds.map { .string($0) })
    if let transform = config["layers_to_transform"], !transform.isNull {
      config["layers_to_transform"] = .array(
        Set(moved.keys.map(\.layer)).sorted().map { .number(Double($0)) })
    }
    var output = adapter
    output.config = config
    output.modules = moved
    output.otherKeys = []
    let report = LoraRebaseReport(
      oldBase: oldPath, newBase: newPath, adapter: adapterPath, output: nil, rank: adapter.rank,
      alpha: adapter.alpha, headTransform: options.normalize ? "normalized" : "paper",
      transfer: transferReport, layerSource: options.mapping == nil ? "weight-cka" : "file",
      layers: layers, heads: headReports, modules: moduleReports, dropped: dropped.sorted(),
      cka: cka.map { m in (0..<m.rows).map { m.row($0) } })
    return LoraRebaseResult(adapter: output, report: report, cka: cka)
  }
}
