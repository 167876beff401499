#if !DEBUG
import Foundation
import Testing
import QEngine

/// Release-only run over real tokenizers and whole corpus files, driven by
/// `Tests/RealModels/check-tokenizer.sh`: writes our ids (int32 little-endian) and timings for
/// the script to compare against the `tokenizers` package. Disabled without its variables.
@Suite struct TokenizerCorpus {
  static let environment = ProcessInfo.processInfo.environment

  @Test(
    .enabled(
      if: environment["QENGINE_TOKENIZER_MODELS"] != nil && environment["QENGINE_TOKENIZER_CORPUS"] != nil
        && environment["QENGINE_TOKENIZER_OUT"] != nil,
      "needs QENGINE_TOKENIZER_MODELS, QENGINE_TOKENIZER_CORPUS and QENGINE_TOKENIZER_OUT (Tests/RealModels/check-tokenizer.sh)"))
  func encodeCorpusFiles() throws {
    let models = try #require(Self.environment["QENGINE_TOKENIZER_MODELS"])
    let files = try #require(Self.environment["QENGINE_TOKENIZER_CORPUS"])
    let output = try #require(Self.environment["QENGINE_TOKENIZER_OUT"])
    let outputFolder = URL(filePath: output)
    var timings: [String] = []
    for model in models.split(separator: ":") {
      let folder = URL(filePath: String(model))
      let loadStart = Date()
      let tokenizer = try Tokenizer(folder: folder)
      let loadSeconds = Date().timeIntervalSince(loadStart)
      timings.append("\(folder.lastPathComponent)\tload\t\(loadSeconds)\t0\t0")
      for file in files.split(separator: ":") {
        let url = URL(filePath: String(file))
        let text = try String(contentsOf: url, encoding: .utf8)
        // A first pass with a cold cache is the honest throughput; a second checks repeatability.
        let start = Date()
        let ids = tokenizer.encode(text, addSpecialTokens: false)
        let seconds = Date().timeIntervalSince(start)
        let again = tokenizer.encode(text, addSpecialTokens: false)
        #expect(again == ids)
        let lineIDs = text.split(separator: "\n", omittingEmptySubsequences: false).prefix(2000)
          .map { tokenizer.encode(String($0), addSpecialTokens: false) }
        #expect(tokenizer.decode(ids) == text, "round trip of \(url.lastPathComponent)")
        var data = Data(capacity: ids.count * 4)
        for id in ids { withUnsafeBytes(of: Int32(id).littleEndian) { data.append(contentsOf: $0) } }
        let name = "\(folder.lastPathComponent)__\(url.lastPathComponent)"
        try data.write(to: outputFolder.appending(path: name + ".ids"))
        var lines = Data()
        for row in lineIDs {
          lines.append(contentsOf: Array((row.map(String.init).joined(separator: " ") + "\n").utf8))
        }
        try lines.write(to: outputFolder.appending(path: name + ".lines"))
        timings.append("\(folder.lastPathComponent)\t\(url.lastPathComponent)\t\(seconds)\t\(ids.count)\t\(text.utf8.count)")
      }
    }
    try Data((timings.joined(separator: "\n") + "\n").utf8).write(to: outputFolder.appending(path: "timings.tsv"))
  }
}
#endif
