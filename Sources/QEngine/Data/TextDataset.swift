import Foundation
import QFormats

/// Documents read from a plain text file (one document) or a JSONL file (one per line, from a
/// text field).
public struct TextDataset: Sendable {
  public var documents: [String]

  public init(documents: [String]) {
    self.documents = documents
  }

  /// Reads `url`: `.jsonl`/`.ndjson` files line by line taking `field`, anything else whole.
  /// - Throws: `TextDataError` naming the file and line.
  public init(contentsOf url: URL, field: String = "text") throws {
    let text = try Self.readText(url)
    let ext = url.pathExtension.lowercased()
    if ext == "jsonl" || ext == "ndjson" {
      self = try TextDataset(jsonLines: text, field: field, file: url.path)
    } else {
      documents = [text]
    }
  }

  /// Parses JSON Lines, one document per non-empty line from the string field `field`.
  public init(jsonLines text: String, field: String = "text", file: String = "<memory>") throws {
    var documents: [String] = []
    var lineNumber = 0
    for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
      lineNumber += 1
      if line.allSatisfy(\.isWhitespace) { continue }
      guard let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else {
        throw TextDataError.invalidJSON(file: file, line: lineNumber)
      }
      guard let value = object[field] as? String else {
        throw TextDataError.missingField(file: file, line: lineNumber, field: field)
      }
      documents.append(value)
    }
    self.documents = documents
  }

  static func readText(_ url: URL) throws -> String {
    let data: Data
    do {
      data = try SideFile.read(url.path, limit: 4 << 30)
    } catch {
      throw TextDataError.unreadable(file: url.path, reason: "\(error)")
    }
    guard let text = String(data: data, encoding: .utf8) else {
      throw TextDataError.unreadable(file: url.path, reason: "is not UTF-8")
    }
    return text
  }

  /// Ids of every document, concatenated in order (documents separated by `separator` ids, for
  /// example the EOS token, when given).
  public func tokenize(with tokenizer: Tokenizer, separator: [Int] = []) -> [Int] {
    var ids: [Int] = []
    for (index, document) in documents.enumerated() {
      if index > 0 { ids += separator }
      ids += tokenizer.encode(document, addSpecialTokens: false)
    }
    return ids
  }
}
