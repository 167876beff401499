import QCompute
import QFormats

/// llama.cpp's GGUF file: each matrix in a block type of llama-quantize's mix for `--gguf-type`,
/// or the type a rule names; `keep` stores a matrix as it is (F32, F16 or BF16). `GGUFExport`
/// writes it. Calibration text serves GPTQ, or else measures an importance matrix.
public enum GGUFLayout: OutputLayout {
  public static let name = "gguf"

  /// The types a rule may ask for: the plain ones and every block type the encoders write.
  static let ruleTypes: Set<GGMLType> = Set([.f32, .f16, .bf16] + GGUFBlockType.allCases.map(\.ggmlType))

  public static func refusalReason(_ option: LayoutOption) -> String? {
    switch option {
    case .method(let method):
      method == "rtn" || method == "gptq"
        ? nil : "GGUF blocks are encoded by llama.cpp's own rounding, or by gptq on the block grid; use rtn or gptq"
    case .bits, .groupSize: "GGUF block types carry their own bits and block size; choose them with '--gguf-type' or a rule"
    case .rule(let rule): ruleRefusal(rule.action)
    case .compress: "llama.cpp loads plain GGUF blocks, not zstd-compressed ones"
    case .maxShardSize: "the export writes one GGUF file"
    case .dryRun: "the plan table is printed for the native layout only"
    case .calibration(let option):
      option.hasPrefix("--calib ")
        ? nil : "it plans the native pack's grids; this layout's calibration is an importance matrix or '--method gptq'"
    case .gguf: nil
    }
  }

  /// Names of the `--gguf-type` mixes whose matrices GPTQ can decide: those whose type is a
  /// block grid (`GGUFBlocks.storedGridTypes`).
  static let gptqTypes = GGUFBlocks.storedGridTypes.map { $0.rawValue.lowercased() }

  public static func combinationRefusal(_ request: ConvertRequest) -> (option: LayoutOption, reason: String)? {
    // Without GPTQ, '--calib' measures the importance matrix that '--imatrix' would give.
    if request.method != "gptq", let calib = request.calibrationOptions.first(where: { $0.hasPrefix("--calib ") }),
      request.ggufOptions.contains(where: { $0.hasPrefix("--imatrix ") })
    {
      return (.calibration(calib), "measures an importance matrix, and '--imatrix' gives one; choose one of them")
    }
    guard request.method == "gptq",
      let option = request.ggufOptions.first(where: { $0.hasPrefix("--gguf-type ") }),
      !gptqTypes.contains(String(option.dropFirst("--gguf-type ".count)))
    else { return nil }
    return (
      .gguf(option),
      "'--method gptq' decides codes on \(gptqTypes.joined(separator: ", ")) blocks; K-quant and iq4_nl grids quantize their own scales, which GPTQ here does not"
    )
  }

  static func ruleRefusal(_ action: RuleAction) -> String? {
    switch action {
    case .keep: nil
    case .ggufType(let type): ruleTypes.contains(type) ? nil : "\(type.name) has no encoder here"
    case .quantize, .bilevel: "GGUF rules name a type (q4_0, q4_k, q6_k, q8_0, f16, ...) or keep"
    }
  }

  /// The type a rule asks for a tensor stored as `dtype`: its own type for `keep`.
  ///
  /// - Throws: `ConvertError.layoutCannotHonour` for a rule this layout cannot hold.
  static func type(for rule: ConvertRule, storedAs dtype: DType) throws(ConvertError) -> GGMLType {
    if let reason = ruleRefusal(rule.action) {
      throw .layoutCannotHonour(option: "rule '\(rule.text)'", layout: name, reason: reason)
    }
    if case .ggufType(let type) = rule.action { return type }
    return keptType(dtype)
  }

  /// How `keep` stores a floating-point tensor: F16 and BF16 as they are, anything else as F32.
  static func keptType(_ dtype: DType) -> GGMLType {
    switch dtype {
    case .f16: .f16
    case .bf16: .bf16
    default: .f32
    }
  }
}
