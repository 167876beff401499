import QCompute

/// MLX's quantized layout (`mlx_lm.convert -q`): affine codes on `mlx.core.quantize`'s grid
/// (round to nearest, clip search, HQQ, or GPTQ on the decoder linears, decided on the grid as
/// MLX stores it), per module
/// `false` (kept) or `{group_size, bits}` in config.json, shards of a given size. `MLXExport`
/// writes it.
public enum MLXLayout: OutputLayout {
  public static let name = "mlx"

  public static func refusalReason(_ option: LayoutOption) -> String? {
    switch option {
    case .method(let method):
      MLXExport.Method(rawValue: method) != nil || method == "gptq"
        ? nil : "MLX's affine grid takes rtn, clip, hqq or gptq here"
    case .bits(let bits):
      MLXExport.supportedBits.contains(bits) ? nil : "MLX export packs bits \(MLXExport.supportedBits.sorted())"
    case .groupSize(let size):
      MLXExport.supportedGroupSizes.contains(size) ? nil : "MLX loads group sizes \(MLXExport.supportedGroupSizes.sorted())"
    case .rule(let rule): ruleRefusal(rule.action)
    case .compress: "mlx_lm loads plain safetensors, not zstd-compressed codes"
    case .maxShardSize: nil
    case .dryRun: "the plan table is printed for the native layout only"
    case .calibration(let option): calibrationRefusal(option)
    case .gguf: "applies to '--layout gguf' only"
    }
  }

  public static func combinationRefusal(_ request: ConvertRequest) -> (option: LayoutOption, reason: String)? {
    calibrationWithoutGPTQ(request)
  }

  /// `--sensitivity` and `--target-bpw` plan the native pack's grids; GPTQ's `--calib` is the
  /// only calibration an export takes.
  static func calibrationRefusal(_ option: String) -> String? {
    option.hasPrefix("--calib ") ? nil : "it plans the native pack's grids; this layout's calibration is '--method gptq' only"
  }

  /// `--calib` given for a method that does not use it.
  static func calibrationWithoutGPTQ(_ request: ConvertRequest) -> (option: LayoutOption, reason: String)? {
    guard request.method != "gptq", let calib = request.calibrationOptions.first(where: { $0.hasPrefix("--calib ") })
    else { return nil }
    return (.calibration(calib), "only '--method gptq' uses calibration on this layout")
  }

  static func ruleRefusal(_ action: RuleAction) -> String? {
    switch action {
    case .keep: return nil
    case .bilevel: return "SPEED-Q's bilevel grid has no MLX equivalent; rules here are keep or BITS[gGROUP]"
    case .ggufType(let type): return "\(type.name) is a GGUF type; rules here are keep or BITS[gGROUP]"
    case .quantize(let bits, let group, let grid, let method):
      if !MLXExport.supportedBits.contains(bits) { return "MLX export packs bits \(MLXExport.supportedBits.sorted())" }
      if let group, !MLXExport.supportedGroupSizes.contains(groupElements(group) ?? 0) {
        return "MLX loads group sizes \(MLXExport.supportedGroupSizes.sorted()), not \(group)"
      }
      if grid == .symmetric || grid == .bilevel { return "MLX's grid is affine" }
      if method != nil { return "on MLX the method is '--method' for every tensor; a rule sets bits and group only" }
      return nil
    }
  }

  /// What a rule asks of a module: `nil` to keep it, or its bits and group size (the main
  /// group size when the rule names none).
  ///
  /// - Throws: `ConvertError.layoutCannotHonour` for a rule this layout cannot hold.
  static func settings(for rule: ConvertRule, main: MLXExport.Settings) throws(ConvertError) -> MLXExport.Settings? {
    if let reason = ruleRefusal(rule.action) {
      throw .layoutCannotHonour(option: "rule '\(rule.text)'", layout: name, reason: reason)
    }
    guard case .quantize(let bits, let group, _, _) = rule.action else { return nil }
    return (bits, group.flatMap(groupElements) ?? main.groupSize)
  }

  /// A group's size in elements; `nil` per channel, which MLX has no grid for.
  static func groupElements(_ group: GroupSize) -> Int? {
    if case .elements(let size) = group { return size }
    return nil
  }
}
