import Foundation

/// The YAML form of a recipe: the same `rules` list as the JSON form, written as YAML.
///
/// Only the shape a recipe needs is read, so no YAML library is linked for it:
///
/// ```yaml
/// # comments and blank lines are ignored
/// rules:
///   - "lm_head=8"                 # REGEX=SPEC, plain or quoted
///   - pattern: '.*down_proj'      # or a pattern/spec pair
///     spec: 4g32
/// ```
/// Anything else (other top-level keys, flow collections, anchors) is an error that names the
/// line, never silently skipped.
enum RecipeYAML {
  static func rules(_ text: String, path: String) throws(ConvertError) -> [Any] {
    var entries: [Any] = []
    var inRules = false
    var pending: [String: String]?
    func fail(_ line: Int, _ reason: String) -> ConvertError {
      .invalidRecipe(path: path, reason: "line \(line): \(reason)")
    }
    func flush() {
      if let pair = pending { entries.append(pair) }
      pending = nil
    }
    for (offset, rawLine) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
      let number = offset + 1
      let line = stripComment(String(rawLine))
      let trimmed = line.trimmingCharacters(in: CharacterSet(charactersIn: " \t\r"))
      if trimmed.isEmpty || trimmed == "---" { continue }
      let indent = line.prefix { $0 == " " }.count
      if indent == 0 {
        guard trimmed == "rules:" else { throw fail(number, "expected 'rules:', found '\(trimmed)'") }
        inRules = true
        continue
      }
      guard inRules else { throw fail(number, "entries must follow 'rules:'") }
      if trimmed.hasPrefix("- ") || trimmed == "-" {
        flush()
        let item = trimmed.dropFirst().trimmingCharacters(in: CharacterSet(charactersIn: " \t"))
        if let (key, value) = try keyValue(item, line: number, fail: fail) {
          pending = [key: value]
        } else {
          entries.append(try scalar(item, line: number, fail: fail))
        }
      } else {
        guard pending != nil, let (key, value) = try keyValue(trimmed, line: number, fail: fail) else {
          throw fail(number, "expected '- REGEX=SPEC' or a 'pattern:'/'spec:' pair")
        }
        pending?[key] = value
      }
    }
    flush()
    guard inRules else { throw .invalidRecipe(path: path, reason: "expected a 'rules:' list") }
    return entries
  }

  /// `pattern: x` or `spec: y`, or `nil` when the item is a plain rule.
  private static func keyValue(
    _ item: String, line: Int, fail: (Int, String) -> ConvertError
  ) throws(ConvertError) -> (String, String)? {
    for key in ["pattern", "spec"] where item.hasPrefix(key + ":") {
      let value = item.dropFirst(key.count + 1).trimmingCharacters(in: CharacterSet(charactersIn: " \t"))
      return (key, try scalar(value, line: line, fail: fail))
    }
    return nil
  }

  /// A plain, single-quoted ('' escapes a quote) or double-quoted (\\ and \" escapes) scalar.
  private static func scalar(
    _ text: String, line: Int, fail: (Int, String) -> ConvertError
  ) throws(ConvertError) -> String {
    guard let first = text.first else { throw fail(line, "empty rule") }
    if first == "'" {
      guard text.count >= 2, text.hasSuffix("'") else { throw fail(line, "unterminated quote") }
      return String(text.dropFirst().dropLast()).replacingOccurrences(of: "''", with: "'")
    }
    if first == "\"" {
      guard text.count >= 2, text.hasSuffix("\"") else { throw fail(line, "unterminated quote") }
      var out = ""
      var escaped = false
      for c in text.dropFirst().dropLast() {
        if escaped {
          out.append(c)
          escaped = false
        } else if c == "\\" {
          escaped = true
        } else {
          out.append(c)
        }
      }
      return out
    }
    if "[{&*!|>".contains(first) { throw fail(line, "'\(first)' YAML forms are not supported in recipes") }
    return text
  }

  /// The line without a `#` comment (a `#` inside quotes or right after a non-space is kept).
  private static func stripComment(_ line: String) -> String {
    var quote: Character?
    var previous: Character = " "
    for (index, c) in zip(line.indices, line) {
      if let q = quote {
        if c == q { quote = nil }
      } else if c == "'" || c == "\"" {
        quote = c
      } else if c == "#" && (previous == " " || previous == "\t") {
        return String(line[..<index])
      }
      previous = c
    }
    return line
  }
}
