import QFormats

/// What one conversion asks for beyond its input and output: the options every layout must
/// either honour or refuse. The executable fills it from its options; `nil` means not given.
public struct ConvertRequest: Sendable {
  /// `--method`, by its name.
  public var method: String = "rtn"
  public var bits: Int? = nil
  public var groupSize: Int? = nil
  /// `--rule` and the recipe's rules, first match wins.
  public var rules: [ConvertRule] = []
  public var compress: Bool = false
  public var maxShardBytes: Int? = nil
  public var dryRun: Bool = false
  /// `--calib`, `--sensitivity`, `--target-bpw`: options that only feed the pack's calibration.
  public var calibrationOptions: [String] = []
  /// `--gguf-type` or `--gguf-pure`, when given.
  public var ggufOptions: [String] = []

  public init() {}
}

/// An output layout: a plug-in of the conversion that says which grids and options it can hold.
///
/// The conversion asks the layout before reading any weight; whatever it cannot honour is
/// refused in one line naming the option and the layout, never ignored.
public protocol OutputLayout {
  /// The name `--layout` takes.
  static var name: String { get }
  /// Why this layout cannot honour `option` (as the user wrote it), or `nil` when it can.
  static func refusalReason(_ option: LayoutOption) -> String?
  /// An option this layout cannot honour together with the rest of `request` (each alone
  /// passed `refusalReason`), and why; `nil` when the request holds together.
  static func combinationRefusal(_ request: ConvertRequest) -> (option: LayoutOption, reason: String)?
}

/// One choice of a request, as the user wrote it, for a layout to accept or refuse.
public enum LayoutOption: Sendable, CustomStringConvertible {
  case method(String)
  case bits(Int)
  case groupSize(Int)
  case rule(ConvertRule)
  case compress
  case maxShardSize(Int)
  case dryRun
  case calibration(String)
  case gguf(String)

  public var description: String {
    switch self {
    case .method(let name): "'--method \(name)'"
    case .bits(let bits): "'--bits \(bits)'"
    case .groupSize(let size): "'--group-size \(size)'"
    case .rule(let rule): "rule '\(rule.text)'"
    case .compress: "'--compress zstd'"
    case .maxShardSize(let bytes): "'--max-shard-size \(bytes)'"
    case .dryRun: "'--dry-run'"
    case .calibration(let option): "'\(option)'"
    case .gguf(let option): "'\(option)'"
    }
  }
}

extension ConvertRequest {
  /// Every choice this request makes, in the order they are checked.
  public var options: [LayoutOption] {
    var out: [LayoutOption] = [.method(method)]
    if let bits { out.append(.bits(bits)) }
    if let groupSize { out.append(.groupSize(groupSize)) }
    out += rules.map(LayoutOption.rule)
    if compress { out.append(.compress) }
    if let maxShardBytes { out.append(.maxShardSize(maxShardBytes)) }
    if dryRun { out.append(.dryRun) }
    out += calibrationOptions.map(LayoutOption.calibration)
    out += ggufOptions.map(LayoutOption.gguf)
    return out
  }
}

extension OutputLayout {
  public static func combinationRefusal(_ request: ConvertRequest) -> (option: LayoutOption, reason: String)? { nil }

  /// Refuses the first option of `request` this layout cannot honour.
  ///
  /// - Throws: `ConvertError.layoutCannotHonour` naming the option and the layout.
  public static func check(_ request: ConvertRequest) throws(ConvertError) {
    for option in request.options {
      if let reason = refusalReason(option) {
        throw .layoutCannotHonour(option: option.description, layout: name, reason: reason)
      }
    }
    if let (option, reason) = combinationRefusal(request) {
      throw .layoutCannotHonour(option: option.description, layout: name, reason: reason)
    }
  }
}
