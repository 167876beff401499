import Foundation
import QCompute
import QFormats

/// A model's input-embedding table and the token strings that index it: the shared ground two
/// models of different widths are compared on.
public struct TokenEmbeddings: Sendable {
  /// Where the embeddings come from, for messages.
  public var location: String
  /// Token string -> row of `tensor`.
  public var vocabulary: [String: Int]
  public var source: any TensorSource
  /// The vocabulary x hidden embedding tensor.
  public var tensor: TensorInfo

  public init(location: String, vocabulary: [String: Int], source: any TensorSource, tensor: TensorInfo) {
    self.location = location
    self.vocabulary = vocabulary
    self.source = source
    self.tensor = tensor
  }

  /// Columns of the embedding table.
  public var hiddenSize: Int { tensor.shape.count == 2 ? tensor.shape[1] : 0 }

  /// The embeddings of a model folder: its `tokenizer.json` vocabulary and its language model's
  /// token-embedding tensor; nil when the checkpoint is not a folder with a `tokenizer.json`.
  /// - Throws: `SimilarityError` when the tokenizer cannot be read or there is no embedding.
  public static func load(
    checkpoint: Checkpoint, source: any TensorSource, architecture: ArchitectureSummary
  ) throws -> TokenEmbeddings? {
    guard let folder = checkpoint.folder else { return nil }
    let file = URL(fileURLWithPath: folder).appendingPathComponent("tokenizer.json").path
    guard FileManager.default.fileExists(atPath: file) else { return nil }
    let vocabulary = try readVocabulary(tokenizerJSON: file)
    let hidden = architecture.language?.hiddenSize ?? architecture.hyperParameters.hiddenSize
    let candidates = source.tensors.filter {
      architecture.role(of: $0.name) == .tokenEmbedding && $0.shape.count == 2
        && architecture.component(of: $0.name) != .visionTower
        && (hidden == nil || $0.shape[1] == hidden)
    }
    guard let tensor = candidates.first else {
      throw SimilarityError.noTokenEmbedding(location: checkpoint.location)
    }
    return TokenEmbeddings(
      location: checkpoint.location, vocabulary: vocabulary, source: source, tensor: tensor)
  }

  /// `model.vocab` of a Hugging Face `tokenizer.json` (BPE, WordPiece and WordLevel write an
  /// object of ids, Unigram a list whose index is the id), plus the added tokens.
  /// - Throws: `SimilarityError.unreadableVocabulary`.
  public static func readVocabulary(tokenizerJSON file: String) throws -> [String: Int] {
    let data: Data
    do {
      data = try Data(contentsOf: URL(fileURLWithPath: file), options: .mappedIfSafe)
    } catch {
      throw SimilarityError.unreadableVocabulary(file: file, reason: "cannot be read")
    }
    if (try? JSONSerialization.jsonObject(with: data)) == nil {
      let problem = JSONSyntaxProblem.find(in: data).map(\.description) ?? "is not valid JSON"
      throw SimilarityError.unreadableVocabulary(file: file, reason: problem)
    }
    guard let root = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
      let model = root["model"] as? [String: Any]
    else {
      throw SimilarityError.unreadableVocabulary(file: file, reason: "is not a tokenizer.json with a 'model' object")
    }
    var vocabulary: [String: Int] = [:]
    if let object = model["vocab"] as? [String: Any] {
      vocabulary.reserveCapacity(object.count)
      for (token, value) in object {
        guard let id = (value as? NSNumber)?.intValue, id >= 0 else {
          throw SimilarityError.unreadableVocabulary(file: file, reason: "token '\(token)' has no id")
        }
        vocabulary[token] = id
      }
    } else if let list = model["vocab"] as? [Any] {
      for (id, entry) in list.enumerated() {
        guard let token = (entry as? [Any])?.first as? String else {
          throw SimilarityError.unreadableVocabulary(file: file, reason: "'model.vocab' entry \(id) has no token")
        }
        vocabulary[token] = id
      }
    } else {
      throw SimilarityError.unreadableVocabulary(file: file, reason: "has no 'model.vocab'")
    }
    for entry in root["added_tokens"] as? [[String: Any]] ?? [] {
      if let content = entry["content"] as? String, let id = (entry["id"] as? NSNumber)?.intValue,
        id >= 0, vocabulary[content] == nil
      {
        vocabulary[content] = id
      }
    }
    return vocabulary
  }

  /// The embedding rows of `ids`, in that order, widened to `Double`.
  /// - Throws: the source's read error; `SimilarityError.layerWeight` for an id outside the table.
  public func rows(_ ids: [Int]) throws -> Matrix<Double> {
    let (count, width) = (tensor.shape.first ?? 0, hiddenSize)
    let elementSize = tensor.dtype.byteSize
    var result = Matrix<Double>(rows: ids.count, columns: width)
    var row = [Float](repeating: 0, count: width)
    try source.withRawBytes(of: tensor.name) { raw in
      guard raw.count == count * width * elementSize else {
        throw SimilarityError.layerWeight(
          location: location, tensor: tensor.name,
          detail: "has \(raw.count) bytes, expected \(count * width * elementSize)")
      }
      for (index, id) in ids.enumerated() {
        guard (0..<count).contains(id) else {
          throw SimilarityError.layerWeight(
            location: location, tensor: tensor.name, detail: "has \(count) rows, token id \(id) is outside")
        }
        let start = id * width * elementSize
        let bytes = UnsafeRawBufferPointer(rebasing: raw[start..<(start + width * elementSize)])
        row.withUnsafeMutableBufferPointer { DTypeConversion.widen(bytes, from: tensor.dtype, into: $0) }
        for c in 0..<width { result[index, c] = Double(row[c]) }
      }
    }
    return result
  }
}
