import Foundation
import Testing
@testable import QEngine

@Suite struct TextDataTests {
  @Test func jsonLinesTakeTheNamedField() throws {
    let text = "{\"text\": \"one\", \"body\": \"x\"}\n\n{\"text\": \"two\\nlines\", \"body\": \"y\"}\n"
    #expect(try TextDataset(jsonLines: text).documents == ["one", "two\nlines"])
    #expect(try TextDataset(jsonLines: text, field: "body").documents == ["x", "y"])
  }

  @Test func jsonLinesErrorsNameTheLine() {
    #expect(throws: TextDataError.missingField(file: "d.jsonl", line: 2, field: "text")) {
      try TextDataset(jsonLines: "{\"text\": \"a\"}\n{\"other\": 1}", file: "d.jsonl")
    }
    #expect(throws: TextDataError.invalidJSON(file: "d.jsonl", line: 1)) {
      try TextDataset(jsonLines: "not json", file: "d.jsonl")
    }
  }

  @Test func filesByExtension() throws {
    let folder = FileManager.default.temporaryDirectory.appending(path: "textdata-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: folder) }
    let plain = folder.appending(path: "a.txt")
    try Data("{\"text\": \"kept whole\"}\n".utf8).write(to: plain)
    #expect(try TextDataset(contentsOf: plain).documents == ["{\"text\": \"kept whole\"}\n"])
    let lines = folder.appending(path: "a.jsonl")
    try Data("{\"text\": \"kept whole\"}\n".utf8).write(to: lines)
    #expect(try TextDataset(contentsOf: lines).documents == ["kept whole"])
  }

  struct WindowCase: CustomTestStringConvertible, Sendable {
    var count: Int
    var context: Int
    var stride: Int
    var testDescription: String { "\(count) ids, context \(context), stride \(stride)" }
  }

  static let windowCases: [WindowCase] = [0, 1, 2, 7, 8, 63, 64, 65, 200].flatMap { count in
    [(8, 8), (8, 3), (8, 1), (64, 32), (2, 1), (2, 2)].map { WindowCase(count: count, context: $0.0, stride: $0.1) }
  }

  /// Targets are scored at most once and in order, windows never exceed the context, and an id
  /// goes unscored only when it starts a window that does not overlap the previous one.
  @Test(arguments: windowCases)
  func windowsScoreEachTargetOnce(item: WindowCase) throws {
    let ids = Array(0..<item.count)
    let windows = try TokenWindows(ids: ids, context: item.context, stride: item.stride)
    var scored: [Int] = []
    var contextFree: Set<Int> = [0]
    var previousEnd = 0
    for window in windows {
      if window.start >= previousEnd { contextFree.insert(window.start) }
      previousEnd = window.start + window.ids.count
      #expect(window.ids.count <= item.context)
      #expect(window.ids.first == window.start)
      #expect(window.firstScoredPosition >= 0)
      for position in window.firstScoredPosition..<(window.ids.count - 1) {
        scored.append(window.ids[window.ids.startIndex + position + 1])
      }
    }
    #expect(scored == ids.filter { !contextFree.contains($0) })
    if item.stride < item.context { #expect(scored == Array(ids.dropFirst())) }
    #expect(windows.scoredTargetCount == scored.count)
  }

  @Test func invalidWindowsAreRefused() {
    #expect(throws: TextDataError.invalidWindow(context: 4, stride: 5)) {
      try TokenWindows(ids: [1, 2], context: 4, stride: 5)
    }
    #expect(throws: TextDataError.invalidWindow(context: 1, stride: 1)) {
      try TokenWindows(ids: [1, 2], context: 1)
    }
  }

  @Test func datasetTokenizesDocumentsWithSeparators() throws {
    let tokenizer = try TokenizerFixtures.tokenizer("smollm2")
    let dataset = TextDataset(documents: ["Hello world", "Bye"])
    let eos = try #require(tokenizer.eosTokenID)
    let expected =
      tokenizer.encode("Hello world", addSpecialTokens: false) + [eos] + tokenizer.encode("Bye", addSpecialTokens: false)
    #expect(dataset.tokenize(with: tokenizer, separator: [eos]) == expected)
  }
}
