import Foundation

/// A layer and head mapping given by hand or by another tool (`--mapping FILE.json`):
/// `{"layers": [[new, old], ...], "heads": {"<new layer>": [[new_head, old_head], ...]}}`.
/// New layers not listed receive no update; layers without a `heads` entry get the Hungarian map.
public struct LoraMappingFile: Sendable, Equatable {
  public var layers: [Int: Int]
  public var heads: [Int: [Int: Int]]

  public init(layers: [Int: Int], heads: [Int: [Int: Int]] = [:]) {
    self.layers = layers
    self.heads = heads
  }

  public static func read(path: String) throws -> LoraMappingFile {
    guard let data = FileManager.default.contents(atPath: path) else {
      throw LoraRebaseError.mapping(path: path, detail: "Cannot read the mapping file")
    }
    guard let root = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
      let layerPairs = root["layers"] as? [Any]
    else {
      throw LoraRebaseError.mapping(path: path, detail: "Expected an object with a 'layers' array")
    }
    func pairs(_ list: [Any], _ what: String) throws -> [Int: Int] {
      var result: [Int: Int] = [:]
      for entry in list {
        guard let pair = entry as? [NSNumber], pair.count == 2, pair[0].intValue >= 0,
          pair[1].intValue >= 0
        else {
          throw LoraRebaseError.mapping(
            path: path, detail: "\(what) entries must be [new, old] pairs of non-negative integers")
        }
        guard result[pair[0].intValue] == nil else {
          throw LoraRebaseError.mapping(path: path, detail: "\(what) maps new \(pair[0]) twice")
        }
        result[pair[0].intValue] = pair[1].intValue
      }
      return result
    }
    var heads: [Int: [Int: Int]] = [:]
    if let headObject = root["heads"] as? [String: Any] {
      for (layer, list) in headObject {
        guard let layerIndex = Int(layer), let list = list as? [Any] else {
          throw LoraRebaseError.mapping(
            path: path, detail: "'heads' keys must be new layer indices with arrays of pairs")
        }
        heads[layerIndex] = try pairs(list, "'heads.\(layer)'")
      }
    }
    return LoraMappingFile(layers: try pairs(layerPairs, "'layers'"), heads: heads)
  }
}
