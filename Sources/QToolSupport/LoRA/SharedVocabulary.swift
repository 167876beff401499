import Foundation

/// The token strings two tokenizers share, with each side's id: the rows of the input embeddings
/// that LoRASuite's hidden transfer matrix is fitted on.
public struct SharedVocabulary: Sendable, Equatable {
  /// `(old id, new id)` for every shared string, in order of the old id.
  public var pairs: [(old: Int, new: Int)]

  public static func == (lhs: Self, rhs: Self) -> Bool {
    lhs.pairs.map(\.old) == rhs.pairs.map(\.old) && lhs.pairs.map(\.new) == rhs.pairs.map(\.new)
  }

  /// The exact string intersection of two vocabularies.
  public init(old: [String: Int], new: [String: Int]) {
    pairs = old.compactMap { string, id in new[string].map { (old: id, new: $0) } }
      .sorted { ($0.old, $0.new) < ($1.old, $1.new) }
  }

  /// Reads both `tokenizer.json` files (model vocabulary plus added tokens) and intersects them.
  public init(oldTokenizer: String, newTokenizer: String) throws {
    self.init(
      old: try Self.vocabulary(ofTokenizer: oldTokenizer),
      new: try Self.vocabulary(ofTokenizer: newTokenizer))
  }

  /// String → id of a `tokenizer.json`: `model.vocab` (a map for BPE and WordPiece, a list of
  /// `[piece, score]` pairs for Unigram, where the index is the id) and `added_tokens`.
  public static func vocabulary(ofTokenizer path: String) throws -> [String: Int] {
    guard let data = FileManager.default.contents(atPath: path) else {
      throw LoraRebaseError.baseModel(path: path, detail: "Cannot read the tokenizer")
    }
    guard let root = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
      let model = root["model"] as? [String: Any]
    else {
      throw LoraRebaseError.baseModel(path: path, detail: "Not a tokenizer.json with a 'model'")
    }
    var vocabulary: [String: Int] = [:]
    if let map = model["vocab"] as? [String: Any] {
      for (string, id) in map {
        if let id = (id as? NSNumber)?.intValue { vocabulary[string] = id }
      }
    } else if let list = model["vocab"] as? [Any] {
      for (id, entry) in list.enumerated() {
        if let piece = (entry as? [Any])?.first as? String { vocabulary[piece] = id }
      }
    } else {
      throw LoraRebaseError.baseModel(path: path, detail: "'model.vocab' is missing")
    }
    for case let token as [String: Any] in root["added_tokens"] as? [Any] ?? [] {
      if let content = token["content"] as? String, let id = (token["id"] as? NSNumber)?.intValue {
        vocabulary[content] = id
      }
    }
    return vocabulary
  }
}
