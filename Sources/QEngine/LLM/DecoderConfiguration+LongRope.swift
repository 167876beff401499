import Foundation
import QFormats

extension DecoderConfiguration {
  /// LongRoPE's settings as transformers reads them: the trained context from
  /// `original_max_position_embeddings` (in the rope entry or the config), `factor` defaulting to
  /// `max_position_embeddings` over it, and the attention factor to `sqrt(1 + ln factor / ln trained)`.
  static func longrope(_ members: [String: JSONValue], trainedContext: Int, location: String) throws -> RopeScaling {
    func factors(_ key: String) throws -> [Double] {
      guard let list = members[key]?.arrayValue else {
        throw EngineError.missingConfig(location: location, key: "rope_scaling.\(key)")
      }
      let values = list.compactMap(\.doubleValue)
      guard values.count == list.count, values.allSatisfy({ $0 > 0 }) else {
        throw DecoderError.invalidConfig(location: location, key: "rope_scaling.\(key)", reason: "is not a list of positive numbers")
      }
      return values
    }
    guard let original = members["original_max_position_embeddings"]?.intValue, original > 1 else {
      throw EngineError.missingConfig(location: location, key: "rope_scaling.original_max_position_embeddings")
    }
    if let partial = members["partial_rotary_factor"]?.doubleValue, partial != 1 {
      throw DecoderError.invalidConfig(
        location: location, key: "rope_scaling.partial_rotary_factor", reason: "is \(partial); only 1 is supported")
    }
    let factor = members["factor"]?.doubleValue ?? Double(trainedContext) / Double(original)
    let attention =
      members["attention_factor"]?.doubleValue
      ?? (factor <= 1 ? 1 : (1 + Foundation.log(factor) / Foundation.log(Double(original))).squareRoot())
    return .longrope(
      shortFactors: try factors("short_factor"), longFactors: try factors("long_factor"), originalContext: original,
      attentionFactor: attention)
  }
}
