import Foundation
import QFormats

/// The file `qdiff --save-mapping` writes and `lora-rebase --mapping` reads: the layer and head
/// mappings between two models with the CKA matrix they came from (`Formats/layer-mapping.md`).
public struct LayerMappingFile: Codable, Sendable, Equatable {
  public static let formatName = "qtoolchain-layer-mapping"
  public var format = LayerMappingFile.formatName
  public var version = 1
  public var oldPath: String
  public var newPath: String
  public var layerSimilarity: LayerSimilarity

  enum CodingKeys: String, CodingKey {
    case format, version
    case oldPath = "old_path"
    case newPath = "new_path"
    case layerSimilarity = "layer_similarity"
  }

  public init(oldPath: String, newPath: String, layerSimilarity: LayerSimilarity) {
    self.oldPath = oldPath
    self.newPath = newPath
    self.layerSimilarity = layerSimilarity
  }

  /// The pretty-printed JSON text, keys sorted.
  public func encoded() throws -> Data {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
    var data = try encoder.encode(self)
    data.append(0x0A)
    return data
  }

  /// Writes the file atomically (a temporary file renamed into place), never over one of
  /// `inputs` or a special file.
  public func write(to path: String, inputs: [String] = []) throws {
    try AtomicText.write(encoded(), to: path, inputs: inputs)
  }

  /// Reads and checks a mapping file.
  /// - Throws: `SimilarityError.invalidMappingFile` for another format, version, or a mapping
  ///   that does not fit its layer and head counts.
  public static func read(from path: String) throws -> LayerMappingFile {
    let data: Data
    do {
      data = try Data(contentsOf: URL(fileURLWithPath: path))
    } catch {
      throw SimilarityError.invalidMappingFile(file: path, reason: "cannot be read")
    }
    return try LayerMappingFile(data: data, path: path)
  }

  /// Decodes and checks a mapping file's contents; `path` is for messages.
  /// - Throws: `SimilarityError.invalidMappingFile`.
  public init(data: Data, path: String) throws {
    let file: LayerMappingFile
    do {
      file = try JSONDecoder().decode(LayerMappingFile.self, from: data)
    } catch {
      throw SimilarityError.invalidMappingFile(file: path, reason: "is not a layer-mapping file (\(error))")
    }
    guard file.format == Self.formatName else {
      throw SimilarityError.invalidMappingFile(file: path, reason: "has format '\(file.format)', expected '\(Self.formatName)'")
    }
    guard file.version == 1 else {
      throw SimilarityError.invalidMappingFile(file: path, reason: "has version \(file.version), expected 1")
    }
    let s = file.layerSimilarity
    func inRange(_ value: Int?, _ count: Int) -> Bool { value.map { (0..<count).contains($0) } ?? true }
    guard s.mapping.count == s.new.layers, s.matrix.count == s.old.layers,
      s.matrix.allSatisfy({ $0.count == s.new.layers }),
      s.mapping.allSatisfy({ inRange($0.old, s.old.layers) }),
      s.heads.allSatisfy({
        $0.newToOld.count == s.new.heads && $0.oldToNew.count == s.old.heads
          && $0.newToOld.allSatisfy { inRange($0, s.old.heads) }
          && $0.oldToNew.allSatisfy { inRange($0, s.new.heads) }
          && inRange($0.oldLayer, s.old.layers) && inRange($0.newLayer, s.new.layers)
      })
    else {
      throw SimilarityError.invalidMappingFile(
        file: path, reason: "has mappings that do not fit its layer and head counts")
    }
    self = file
  }
}
