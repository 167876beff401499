import Foundation
import QCompute
import QFormats

/// What a rule asks for a tensor: keep it as stored, or quantize it.
public enum RuleAction: Sendable, Hashable {
  case keep
  /// `bits`, an optional group (`nil` = the main group size), an optional grid modifier and
  /// method (`nil` = the main ones), or SPEED-Q's bilevel grid at `bits`.
  case quantize(bits: Int, group: GroupSize?, grid: PackGrid?, method: PackMethod?)
  case bilevel(bits: Int)
  /// A GGUF tensor type by llama.cpp's name (`q4_0`, `q6_k`, `f16`, ...); only the GGUF layout
  /// stores these.
  case ggufType(GGMLType)
}

/// One `REGEX=SPEC` rule; the first rule whose pattern matches a tensor name decides.
public struct ConvertRule: @unchecked Sendable, CustomStringConvertible {
  public let text: String
  public let pattern: Regex<AnyRegexOutput>
  public let action: RuleAction

  public var description: String { text }

  /// Parses `REGEX=SPEC`; SPEC is `keep`, `bilevel2`, `bilevel4`,
  /// `BITS[gGROUP][:sym|:affine][:rtn|:clip|:hqq]` (group 0 is per channel) or a GGUF type name.
  public init(parsing text: String) throws(ConvertError) {
    guard let equals = text.lastIndex(of: "=") else {
      throw .invalidRule(rule: text, reason: "expected REGEX=SPEC")
    }
    let patternText = String(text[..<equals])
    let specText = String(text[text.index(after: equals)...]).trimmingCharacters(in: .whitespaces)
    guard !patternText.isEmpty else { throw .invalidRule(rule: text, reason: "the pattern is empty") }
    do {
      pattern = try Regex(patternText)
    } catch {
      throw .invalidRule(rule: text, reason: "'\(patternText)' is not a valid regular expression")
    }
    self.text = text
    action = try Self.parseAction(specText, rule: text)
  }

  static func parseAction(_ spec: String, rule: String) throws(ConvertError) -> RuleAction {
    let lowered = spec.lowercased()
    if lowered == "keep" { return .keep }
    if let type = ggufTypes[lowered] { return .ggufType(type) }
    if lowered.hasPrefix("bilevel") {
      guard let bits = Int(lowered.dropFirst("bilevel".count)), bits == 2 || bits == 4 else {
        throw .invalidRule(rule: rule, reason: "'\(spec)': bilevel takes 2 or 4 bits (bilevel2, bilevel4)")
      }
      return .bilevel(bits: bits)
    }
    let parts = lowered.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
    guard let head = parts.first, !head.isEmpty else {
      throw .invalidRule(rule: rule, reason: "the spec is empty")
    }
    let headParts = head.split(separator: "g", omittingEmptySubsequences: false).map(String.init)
    guard headParts.count <= 2, let bits = Int(headParts[0]) else {
      throw .invalidRule(rule: rule, reason: "'\(spec)' is not keep, bilevel2, bilevel4, BITS[gGROUP][:MODIFIER] or a GGUF type (q4_0, q6_k, f16, ...)")
    }
    guard BitPacking.streamBits.contains(bits) else {
      throw .invalidRule(rule: rule, reason: "\(bits) bits is not one of 2, 3, 4, 5, 6, 8")
    }
    var group: GroupSize?
    if headParts.count == 2 {
      guard let size = Int(headParts[1]) else {
        throw .invalidRule(rule: rule, reason: "'\(headParts[1])' is not a group size")
      }
      group = try groupSize(size, where: "rule '\(rule)'")
    }
    var grid: PackGrid?
    var method: PackMethod?
    for modifier in parts.dropFirst() {
      switch modifier {
      case "sym", "symmetric":
        guard grid == nil else { throw .invalidRule(rule: rule, reason: "more than one grid") }
        grid = .symmetric
      case "affine", "asym":
        guard grid == nil else { throw .invalidRule(rule: rule, reason: "more than one grid") }
        grid = .affine
      case "rtn", "clip", "hqq":
        guard method == nil else { throw .invalidRule(rule: rule, reason: "more than one method") }
        method = PackMethod(rawValue: modifier)
      default:
        throw .invalidRule(rule: rule, reason: "unknown modifier '\(modifier)' (sym, affine, rtn, clip, hqq)")
      }
    }
    if grid == .symmetric, let method, method != .rtn {
      throw .invalidRule(rule: rule, reason: "the symmetric grid is round-to-nearest only, not '\(method.rawValue)'")
    }
    return .quantize(bits: bits, group: group, grid: grid, method: method)
  }

  /// The GGUF types a rule may name, by llama.cpp's lower-case names.
  public static let ggufTypes: [String: GGMLType] = [
    "f32": .f32, "f16": .f16, "bf16": .bf16, "q4_0": .q4_0, "q4_1": .q4_1, "q5_0": .q5_0,
    "q5_1": .q5_1, "q8_0": .q8_0, "q2_k": .q2K, "q3_k": .q3K, "q4_k": .q4K, "q5_k": .q5K,
    "q6_k": .q6K, "iq4_nl": .iq4NL,
  ]

  /// Checks a group size option: 16, 32, 64, 128, or 0 for per channel.
  public static func groupSize(_ size: Int, where context: String) throws(ConvertError) -> GroupSize {
    switch size {
    case 0: return .perChannel
    case 16, 32, 64, 128: return .elements(size)
    default:
      throw .invalidOption(option: context, reason: "group size \(size) is not one of 0 (per channel), 16, 32, 64, 128")
    }
  }

  /// Reads rules from a JSON recipe: `{"rules": ["REGEX=SPEC", ...]}` or
  /// `{"rules": [{"pattern": "REGEX", "spec": "SPEC"}, ...]}`.
  public static func recipe(at path: String) throws(ConvertError) -> [ConvertRule] {
    let data: Data
    do { data = try Data(contentsOf: URL(fileURLWithPath: path)) } catch {
      throw .invalidRecipe(path: path, reason: "cannot be read")
    }
    let entries: [Any]
    if path.hasSuffix(".yaml") || path.hasSuffix(".yml") {
      entries = try RecipeYAML.rules(String(decoding: data, as: UTF8.self), path: path)
    } else {
      guard let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
        let list = object["rules"] as? [Any]
      else {
        throw .invalidRecipe(path: path, reason: "expected a JSON object with a 'rules' array")
      }
      entries = list
    }
    var rules: [ConvertRule] = []
    for (index, entry) in entries.enumerated() {
      if let text = entry as? String {
        rules.append(try ConvertRule(parsing: text))
      } else if let pair = entry as? [String: Any], let pattern = pair["pattern"] as? String,
        let spec = pair["spec"] as? String
      {
        rules.append(try ConvertRule(parsing: pattern + "=" + spec))
      } else {
        throw .invalidRecipe(path: path, reason: "rule \(index) is neither 'REGEX=SPEC' nor {pattern, spec}")
      }
    }
    return rules
  }
}
