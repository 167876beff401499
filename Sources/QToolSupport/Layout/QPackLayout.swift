import QCompute

/// The native pack (Formats/qpack.md): every method, grid, rule, compression and sharding;
/// only GGUF's own types and options, and MLX's 5 and 6 bits, are foreign to it.
public enum QPackLayout: OutputLayout {
  public static let name = "native"

  public static func refusalReason(_ option: LayoutOption) -> String? {
    switch option {
    case .bits(let bits): return bitsRefusal(bits)
    case .rule(let rule):
      if case .ggufType(let type) = rule.action { return "\(type.name) is a GGUF type, which only '--layout gguf' stores" }
      if case .quantize(let bits, _, _, _) = rule.action { return bitsRefusal(bits) }
      return nil
    case .gguf: return "applies to '--layout gguf' only"
    default: return nil
    }
  }

  /// The engine's kernels read 2, 3, 4 and 8 bits; 5 and 6 are MLX's.
  static func bitsRefusal(_ bits: Int) -> String? {
    if BitPacking.supportedBits.contains(bits) { return nil }
    let elsewhere = BitPacking.streamBits.contains(bits) ? "; \(bits) is for '--layout mlx'" : ""
    return "a qpack stores 2, 3, 4 or 8 bits\(elsewhere)"
  }
}
