import Foundation
import QCompute
import QFormats

/// Choices for one move.
public struct LoraRebaseOptions: Sendable {
  /// Use the least-squares head and neuron maps, exact when old and new are the same model.
  public var normalize: Bool
  /// Leave out modules that cannot be moved instead of failing.
  public var skipUnsupported: Bool
  /// The layer and head mappings of `qdiff --save-mapping`, used instead of computing them.
  public var mapping: LayerMappingFile?
  /// Text both bases run on for the activation CKA of the layer map (the paper's); the weight
  /// CKA when nil. Ignored when `mapping` is set.
  public var activations: LoraRebaseActivations?

  public init(
    normalize: Bool = false, skipUnsupported: Bool = false, mapping: LayerMappingFile? = nil,
    activations: LoraRebaseActivations? = nil
  ) {
    self.normalize = normalize
    self.skipUnsupported = skipUnsupported
    self.mapping = mapping
    self.activations = activations
  }
}

/// The text of `--data`, read as `qdiff --data` reads it: the same windows for both bases when
/// their tokenizers agree, otherwise each base's own ids of the same whole-word pieces.
public struct LoraRebaseActivations: Sendable {
  public var text: String
  public var field: String
  /// At most this many ids per window on either side.
  public var context: Int
  public var windows: Int?

  public init(text: String, field: String = "text", context: Int = 512, windows: Int? = nil) {
    self.text = text
    self.field = field
    self.context = context
    self.windows = windows
  }
}

/// The moved adapter, the report and the layer similarity behind the layer map.
public struct LoraRebaseResult: Sendable {
  public var adapter: PEFTAdapter
  public var report: LoraRebaseReport
  public var similarity: LayerSimilarity
}

/// A base model: its checkpoint as `qdiff` reads it and its decoder layers.
struct LoraBaseModel {
  let input: DiffInput
  let layers: DecoderLayers
  let name: String

  init(path: String) throws {
    input = try DiffInput(Checkpoint.open(path))
    layers = try DecoderLayers(
      location: input.checkpoint.location, source: input.source, architecture: input.architecture)
    let folderName = ((input.checkpoint.folder ?? path) as NSString).standardizingPath
    name = input.config?.raw["_name_or_path"]?.stringValue ?? (folderName as NSString).lastPathComponent
  }

  var hidden: Int { layers.hiddenSize }
  var heads: Int { layers.heads }
  var kvHeads: Int { layers.kvHeads }
  var headDim: Int { layers.headDim }

  var tokenizerPath: String {
    ((input.checkpoint.folder ?? input.checkpoint.location) as NSString)
      .appendingPathComponent("tokenizer.json")
  }

  /// The base weight a module of `layer` updates (`model.layers.N.<module>.weight` for layers
  /// the checkpoint does not have).
  func weightName(layer: Int, module: String) -> String {
    layer < layers.count ? layers.prefixes[layer] + module + ".weight" : "model.layers.\(layer).\(module).weight"
  }

  /// The checkpoint's name of its layer stack, before the index (`model.layers.`, or
  /// `model.language_model.layers.` in a Gemma 3 wrapper); nil without layers.
  var layerStem: String? {
    guard let first = layers.prefixes.first else { return nil }
    let stem = first.dropLast().reversed().drop(while: \.isNumber).reversed()
    return String(stem)
  }

  /// The PEFT key prefix for an adapter on this base, given one written for `old`: the adapter's
  /// own prefix with the old base's layer stem swapped for this one's, so that PEFT finds the
  /// modules of a wrapper (`base_model.model.model.language_model.layers.`) or a prefix-less base.
  func peftKeyPrefix(from adapterPrefix: String, old oldStem: String?) -> String {
    guard let stem = layerStem else { return adapterPrefix }
    if let oldStem, adapterPrefix.hasSuffix(oldStem) {
      return String(adapterPrefix.dropLast(oldStem.count)) + stem
    }
    return "base_model.model." + stem
  }

  func matrix(layer: Int, _ module: String) throws -> Matrix<Double> {
    try layers.matrix(layer: layer, module + ".weight")
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
    // An adapter on an old base's fused modules (Phi-3's qkv_proj) is moved as its parts.
    let adapter = try old.reading(PEFTAdapter.read(folder: adapterPath))
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
      let baseTensor = old.weightName(layer: key.layer, module: key.module)
      // A part of a fused weight has its rows of it.
      let baseShape =
        key.layer < old.layers.count
        ? old.layers.shape(layer: key.layer, key.module + ".weight") : old.input.source.info(named: baseTensor)?.shape
      guard baseShape == [factors.b.rows, factors.a.columns] else {
        throw LoraRebaseError.baseMismatch(
          key: adapter.tensorNames(for: key).a, adapterShape: [factors.b.rows, factors.a.columns],
          baseTensor: baseTensor, baseShape: baseShape)
      }
      modules[key] = factors
    }

    // Hidden transfer W_x, as qdiff computes it.
    let fit: TransferMatrix.Fit?
    let needed = 2 * old.hidden
    do {
      fit = try TransferMatrix.between(
        old: (old.input.checkpoint, old.input.source, old.input.architecture, old.hidden),
        new: (new.input.checkpoint, new.input.source, new.input.architecture, new.hidden))
    } catch SimilarityError.tooFewSharedTokens(let count, _) {
      throw LoraRebaseError.tooFewSharedTokens(
        shared: count, needed: needed, old: old.tokenizerPath, new: new.tokenizerPath)
    }
    if let fit, fit.sharedTokens < needed {
      throw LoraRebaseError.tooFewSharedTokens(
        shared: fit.sharedTokens, needed: needed, old: old.tokenizerPath, new: new.tokenizerPath)
    }
    let transfer = fit?.matrix ?? .identity(old.hidden)
    let transferReport = LoraRebaseReport.Transfer(
      kind: fit == nil ? "identity" : "shared-tokens", oldHidden: old.hidden,
      newHidden: new.hidden, sharedTokens: fit?.sharedTokens)

    // Layer and head allocation: from the file, or computed as qdiff does.
    let similarity: LayerSimilarity
    var layerSource = "weight-cka"
    var layerData: LoraRebaseReport.LayerData?
    if let file = options.mapping {
      similarity = file.layerSimilarity
      layerSource = "file"
      try check(similarity.old, against: old, side: "OLD_BASE", path: file.oldPath)
      try check(similarity.new, against: new, side: "NEW_BASE", path: file.newPath)
    } else if let data = options.activations {
      (similarity, layerData) = try activationSimilarity(old: old, new: new, data: data)
      layerSource = "activation-cka"
    } else {
      similarity = try LayerSimilarity.fromWeights(old: old.layers, new: new.layers, transfer: fit)
    }
    let layers = similarity.newToOld

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
      var headMap: [Int?] = []
      if keys.contains(where: { attentionKinds.contains($0.kind) }) {
        if let pair = similarity.heads.first(where: { $0.newLayer == newLayer && $0.oldLayer == oldLayer }) {
          headMap = pair.newToOld
          headReports.append(
            .init(newLayer: newLayer, oldLayer: oldLayer, newToOld: headMap, similarity: pair.totalSimilarity))
        } else {
          // A hand-edited file may map a pair it has no heads for.
          let a = try old.layers.attention(layer: oldLayer)
          let b = try new.layers.attention(layer: newLayer)
          let result = try HeadMapping.map(
            oldQ: a.q, oldK: a.k, oldV: a.v, oldO: a.o, newQ: b.q, newK: b.k, newV: b.v, newO: b.o,
            heads: (old.heads, new.heads), kvHeads: (old.kvHeads, new.kvHeads), transfer: fit?.matrix)
          headMap = result.newToOld
          headReports.append(
            .init(
              newLayer: newLayer, oldLayer: oldLayer, newToOld: headMap,
              similarity: result.totalSimilarity))
        }
      }
      // The normalized MLP moves a layer's up, gate and down updates together.
      var normalizedMLP: [LoRAModuleKey: LoRAFactors] = [:]
      let mlpKeys = keys.filter { mlpKinds.contains($0.kind) }
      if options.normalize && !mlpKeys.isEmpty {
        func stack(_ model: LoraBaseModel, _ layer: Int) throws -> [Matrix<Double>] {
          [
            try model.matrix(layer: layer, "mlp.up_proj"), try model.matrix(layer: layer, "mlp.gate_proj"),
            try model.matrix(layer: layer, "mlp.down_proj").transposed(),
          ]
        }
        let present = mlpKeys.filter { modules[$0] != nil }
        let updates = present.compactMap { key in
          modules[key].map {
            (factors: $0, direction: key.kind == "down_proj" ? LoRATransfer.MLPDirection.contracting : .expanding)
          }
        }
        let movedMLP = try LoRATransfer.normalizedMLP(
          updates, old: try stack(old, oldLayer), new: try stack(new, newLayer), transfer: fit?.matrix)
        for (key, factors) in zip(present, movedMLP) { normalizedMLP[key] = factors }
      }
      for key in keys {
        guard let factors = modules[key] else { continue }
        let newKey = LoRAModuleKey(layer: newLayer, module: key.module)
        let result: LoRAFactors
        if let fromLayer = normalizedMLP[key] {
          result = fromLayer
        } else {
          let oldWeight = try old.matrix(layer: oldLayer, key.module)
          let newWeight = try new.matrix(layer: newLayer, key.module)
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
            result = try LoRATransfer.contracting(
              factors, oldWeight: oldWeight, newWeight: newWeight, transfer: transfer)
          default:  // up_proj, gate_proj
            result = try LoRATransfer.expanding(
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
    output.keyPrefix = new.peftKeyPrefix(from: adapter.keyPrefix, old: old.layerStem)
    output = try new.storing(output)
    let report = LoraRebaseReport(
      oldBase: oldPath, newBase: newPath, adapter: adapterPath, output: nil, rank: adapter.rank,
      alpha: adapter.alpha, headTransform: options.normalize ? "normalized" : "paper",
      transfer: transferReport, layerSource: layerSource, layerData: layerData, layers: layers, heads: headReports, modules: moduleReports, dropped: dropped.sorted(),
      cka: similarity.matrix)
    return LoraRebaseResult(adapter: output, report: report, similarity: similarity)
  }

  /// The activation layer similarity of `qdiff --data` on the two bases.
  static func activationSimilarity(
    old: LoraBaseModel, new: LoraBaseModel, data: LoraRebaseActivations
  ) throws -> (LayerSimilarity, LoraRebaseReport.LayerData) {
    let run = try DataComparison.compare(
      old: old.input.checkpoint, new: new.input.checkpoint, text: data.text, context: data.context,
      windows: data.windows, field: data.field, contextOption: "--data-context")
    guard let similarity = run.layerSimilarity else {
      throw LoraRebaseError.data(
        path: data.text,
        detail: "Gives \(run.activationExamples) activation examples per layer; the CKA needs at least 4 (a longer text or more --data-windows)")
    }
    return (
      similarity,
      LoraRebaseReport.LayerData(
        text: data.text, tokenization: run.tokenization, windows: run.windows,
        examples: run.activationExamples)
    )
  }

  /// A mapping file must describe models of the same shape as the bases it is applied to.
  static func check(
    _ shape: LayerSimilarity.ModelShape, against model: LoraBaseModel, side: String, path: String
  ) throws {
    let actual = (model.layers.count, model.heads, model.kvHeads)
    guard (shape.layers, shape.heads, shape.kvHeads) == actual else {
      throw LoraRebaseError.mapping(
        path: "--mapping",
        detail:
          "the file's \(side) ('\(path)') has \(shape.layers) layers, \(shape.heads) heads and \(shape.kvHeads) key/value heads, but \(side) has \(actual.0), \(actual.1) and \(actual.2)")
    }
  }
}
