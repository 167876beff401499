import Foundation
import Testing

@testable import QToolSupport

/// Recipe files: the JSON and the YAML form hold the same rules.
@Suite struct QConvertRecipeTests {
  func write(_ text: String, as name: String) throws -> String {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("recipe-\(UUID().uuidString)-\(name)")
    try Data(text.utf8).write(to: url)
    return url.path
  }

  @Test func yamlAndJSONGiveTheSameRules() throws {
    let yaml = try write(
      """
      # keep the head precise
      rules:
        - "lm_head=8"            # quoted
        - .*down_proj=4g32:sym
        - pattern: 'it''s.*'
          spec: keep
      """, as: "r.yaml")
    let json = try write(
      #"{"rules": ["lm_head=8", ".*down_proj=4g32:sym", {"pattern": "it's.*", "spec": "keep"}]}"#, as: "r.json")
    defer {
      try? FileManager.default.removeItem(atPath: yaml)
      try? FileManager.default.removeItem(atPath: json)
    }
    let fromYAML = try ConvertRule.recipe(at: yaml).map(\.text)
    let fromJSON = try ConvertRule.recipe(at: json).map(\.text)
    #expect(fromYAML == fromJSON)
    #expect(fromYAML == ["lm_head=8", ".*down_proj=4g32:sym", "it's.*=keep"])
  }

  @Test(arguments: [
    ("layers: []\n", "line 1"),
    ("rules:\n  - [a, b]\n", "line 2"),
    ("rules:\n  - 'open\n", "unterminated"),
    ("rules:\n  spec: 4\n", "line 2"),
    ("# nothing\n", "'rules:'"),
  ])
  func malformedYAMLNamesTheLine(text: String, expected: String) throws {
    let path = try write(text, as: "bad.yml")
    defer { try? FileManager.default.removeItem(atPath: path) }
    do {
      _ = try ConvertRule.recipe(at: path)
      Issue.record("expected an error for \(text)")
    } catch {
      #expect("\(error)".contains(expected), "\(error)")
      #expect("\(error)".contains(path))
    }
  }
}
