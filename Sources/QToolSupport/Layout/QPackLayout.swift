/// The native pack (Formats/qpack.md): every method, grid, rule, compression and sharding;
/// only GGUF's own types and options are foreign to it.
public enum QPackLayout: OutputLayout {
  public static let name = "native"

  public static func refusalReason(_ option: LayoutOption) -> String? {
    switch option {
    case .rule(let rule):
      if case .ggufType(let type) = rule.action { return "\(type.name) is a GGUF type, which only '--layout gguf' stores" }
      return nil
    case .gguf: return "applies to '--layout gguf' only"
    default: return nil
    }
  }
}
