import QCompute
import QFormats

/// The whole-model types `llama-quantize` offers (its `LLAMA_FTYPE_MOSTLY_*`), each a default
/// block type plus per-tensor choices; Formats/gguf-export.md lists them.
public enum GGUFMix: String, Sendable, CaseIterable {
  case q4_0, q4_1, q5_0, q5_1, q8_0
  case q2_k, q3_k_s, q3_k_m, q3_k_l, q4_k_s, q4_k_m, q5_k_s, q5_k_m, q6_k
  case iq4_nl

  /// llama.cpp's `general.file_type` (`LLAMA_FTYPE_MOSTLY_*` in llama.h).
  public var fileType: UInt32 {
    switch self {
    case .q4_0: 2
    case .q4_1: 3
    case .q8_0: 7
    case .q5_0: 8
    case .q5_1: 9
    case .q2_k: 10
    case .q3_k_s: 11
    case .q3_k_m: 12
    case .q3_k_l: 13
    case .q4_k_s: 14
    case .q4_k_m: 15
    case .q5_k_s: 16
    case .q5_k_m: 17
    case .q6_k: 18
    case .iq4_nl: 25
    }
  }

  /// The type of every matrix the per-tensor choices leave alone (`llama_ftype_get_default_type`).
  public var defaultType: GGUFBlockType {
    switch self {
    case .q4_0: .q4_0
    case .q4_1: .q4_1
    case .q5_0: .q5_0
    case .q5_1: .q5_1
    case .q8_0: .q8_0
    case .q2_k: .q2_K
    case .q3_k_s, .q3_k_m, .q3_k_l: .q3_K
    case .q4_k_s, .q4_k_m: .q4_K
    case .q5_k_s, .q5_k_m: .q5_K
    case .q6_k: .q6_K
    case .iq4_nl: .iq4_NL
    }
  }
}

/// How `GGUFExport` picks each matrix's type.
public enum GGUFTypeSelection: Sendable {
  /// llama-quantize's per-tensor choices for a mix (`llama_tensor_get_type`, no importance matrix).
  case mix(GGUFMix)
  /// Every matrix in the mix's default type, as `llama-quantize --pure`.
  case pure(GGUFMix)
  /// Every matrix in one block type.
  case uniform(GGUFBlockType)
}

/// What the per-tensor choices depend on: llama.cpp's hyper-parameters and the tensors in file order.
struct GGUFMixModel {
  var layers: Int
  var heads: Int
  var keyValueHeads: Int
  /// No `output.weight`: the token embedding is quantized as the output would be.
  var tiedEmbeddings: Bool
  /// llama.cpp's `LLM_TYPE_70B` for a Llama: 80 layers with grouped-query attention.
  var is70B: Bool { layers == 80 && heads != keyValueHeads }
  /// `n_gqa()`: query heads per key/value head.
  var groupedQueryFactor: Int { keyValueHeads > 0 ? heads / keyValueHeads : 0 }
}

extension GGUFExport {
  /// Storage types for tensors in file order: vectors F32, matrices as `selection` decides, then
  /// llama-quantize's fallbacks for rows that are not whole blocks (`tensor_type_fallback`).
  ///
  /// Layer-dependent choices count `attn_v` and `ffn_down` tensors in the order llama-quantize
  /// visits them (`i_attention_wv`, `i_ffn_down`): by the layer number in `blk.N.`, then by name
  /// (llama_model_loader's `weight_name_comparer`), whatever the file's own order.
  ///
  /// With an importance matrix (`weighted`), the q4_0 and q5_0 mixes store the first eighth of
  /// the `ffn_down` tensors as Q4_1 or Q5_1, as llama-quantize does then.
  static func storageTypes(
    for tensors: [(name: String, shape: [Int])], model: GGUFMixModel, selection: GGUFTypeSelection,
    weighted: Bool = false
  ) -> [GGMLType] {
    let attentionV = tensors.filter { $0.shape.count == 2 && $0.name.contains("attn_v.weight") }.count
    var attentionVIndex = 0
    var ffnDownIndex = 0
    var types = [GGMLType](repeating: .f32, count: tensors.count)
    for position in visitingOrder(tensors.map(\.name)) {
      let tensor = tensors[position]
      guard tensor.shape.count == 2 else { continue }
      let columns = tensor.shape[1]
      var type: GGMLType
      switch selection {
      case .uniform(let block): type = block.ggmlType
      case .pure(let mix): type = mix.defaultType.ggmlType
      case .mix(let mix):
        type = mixType(
          mix: mix, name: tensor.name, columns: columns, model: model,
          attentionV: (attentionVIndex, attentionV), ffnDown: (ffnDownIndex, model.layers), weighted: weighted)
        if tensor.name.contains("attn_v.weight") { attentionVIndex += 1 }
        if tensor.name.contains("ffn_down") { ffnDownIndex += 1 }
      }
      types[position] = fallback(type, columns: columns)
    }
    return types
  }

  /// Positions of `names` in llama_model_loader's order: tensors outside a `blk.N.` first, then
  /// by layer number, then by name.
  static func visitingOrder(_ names: [String]) -> [Int] {
    func layer(_ name: String) -> Int {
      guard name.hasPrefix("blk.") else { return -1 }
      let digits = name.dropFirst(4).prefix { $0.isASCII && $0.isNumber }
      return Int(digits) ?? -1
    }
    let keys = names.map { (layer($0), Array($0.utf8)) }
    return names.indices.sorted { a, b in
      keys[a].0 != keys[b].0 ? keys[a].0 < keys[b].0 : keys[a].1.lexicographicallyPrecedes(keys[b].1)
    }
  }

  /// llama.cpp's `use_more_bits`: the first and last eighth of the layers and every third between.
  static func usesMoreBits(_ layer: Int, of count: Int) -> Bool {
    layer < count / 8 || layer >= 7 * count / 8 || (layer - count / 8) % 3 == 2
  }

  /// `llama_tensor_get_type_impl` for a Llama-family model without experts; `weighted` says an
  /// importance matrix is given (`qs.has_imatrix`).
  static func mixType(
    mix: GGUFMix, name: String, columns: Int, model: GGUFMixModel,
    attentionV: (index: Int, count: Int), ffnDown: (index: Int, count: Int), weighted: Bool = false
  ) -> GGMLType {
    let base = mix.defaultType.ggmlType
    let isOutput = name == "output.weight"
    let isTokenEmbedding = name == "token_embd.weight"
    if isOutput || (model.tiedEmbeddings && isTokenEmbedding) {
      if columns % base.blockSize != 0 { return .q8_0 }
      return base == .q8_0 ? .q8_0 : .q6K
    }
    if isTokenEmbedding { return base }
    if name.contains("attn_v.weight") {
      var type = base
      let (i, n) = attentionV
      switch mix {
      case .q2_k: type = model.groupedQueryFactor >= 4 ? .q4K : .q3K
      case .q3_k_m: type = i < 2 ? .q5K : .q4K
      case .q3_k_l: type = .q5K
      case .iq4_nl where model.groupedQueryFactor >= 4: type = .q5K
      case .q4_k_m, .q5_k_m: if usesMoreBits(i, of: n) { type = .q6K }
      case .q4_k_s: if i < 4 { type = .q5K }
      default: break
      }
      if model.is70B && (type == .q3K || type == .q4K) { type = .q5K }
      return type
    }
    if name.contains("ffn_down") {
      let (i, n) = ffnDown
      switch mix {
      case .q2_k: return .q3K
      case .q3_k_m: return i < n / 16 ? .q5K : .q4K
      case .q3_k_l: return .q5K
      case .q4_k_m: return usesMoreBits(i, of: n) ? .q6K : base
      case .iq4_nl: return i < n / 8 ? .q5K : base
      case .q5_k_m: return usesMoreBits(i, of: n) ? .q6K : base
      case .q4_k_s: return i < n / 8 ? .q5K : base
      // llama.cpp's guard for the first ffn_down layers, taken only with an importance matrix.
      case .q4_0 where weighted: return i < n / 8 ? .q4_1 : base
      case .q5_0 where weighted: return i < n / 8 ? .q5_1 : base
      default: return base
      }
    }
    if name.contains("attn_output.weight") {
      switch mix {
      case .q2_k: return .q3K
      case .q3_k_m: return .q4K
      case .q3_k_l: return .q5K
      default: return base
      }
    }
    return base
  }

  /// `tensor_type_fallback`: a type whose blocks do not divide the row length falls back to a
  /// 32-value type of about the same size, then to F16.
  static func fallback(_ type: GGMLType, columns: Int) -> GGMLType {
    guard columns % type.blockSize != 0 else { return type }
    let next: GGMLType =
      switch type {
      case .q2K, .q3K: .q4_0
      case .q4K: .q5_0
      case .q5K: .q5_1
      case .q6K: .q8_0
      default: type
      }
    return columns % next.blockSize == 0 ? next : .f16
  }
}
