import Foundation

/// The parts of a Hugging Face `config.json` that describe a model's shape.
///
/// Configs differ between families and versions, so unknown keys are kept in `raw` and only
/// the keys below are read; a known key of the wrong type is an error, `null` counts as absent.
/// Multimodal configs nest the language model's settings under `text_config` (LLaVA,
/// PaliGemma, Idefics3/SmolVLM, Gemma 3) or `llm_config` (InternVL), and the vision tower's
/// under `vision_config`; Qwen2-VL keeps the language model's settings at the top level.
public struct ModelConfig: Sendable {
  /// Where the config came from, for messages.
  public var location: String
  /// Every key, as read.
  public var raw: [String: JSONValue]

  public var modelType: String?
  public var architectures: [String]
  public var vocabSize: Int?
  public var hiddenSize: Int?
  public var numHiddenLayers: Int?
  public var numAttentionHeads: Int?
  public var numKeyValueHeads: Int?
  public var headDim: Int?
  public var intermediateSize: Int?
  public var ropeTheta: Double?
  /// Kept raw: each scaling type has its own keys.
  public var ropeScaling: JSONValue?
  public var maxPositionEmbeddings: Int?
  public var tieWordEmbeddings: Bool?
  /// `torch_dtype`, or the newer `dtype` key.
  public var torchDType: String?
  /// `quantization_config` or `quantization` (MLX), kept raw.
  public var quantization: JSONValue?

  private var nested: Nested

  /// The language model's config in a multimodal model.
  public var textConfig: ModelConfig? { nested.text }
  /// The vision tower's config in a multimodal model.
  public var visionConfig: ModelConfig? { nested.vision }

  /// Parses a `config.json`.
  /// - Parameters:
  ///   - data: The file's contents.
  ///   - location: The path or name to put in messages.
  /// - Throws: `ModelError` when the file is not a JSON object or a known key has the wrong type.
  public init(data: Data, location: String) throws {
    let value: JSONValue
    do {
      value = try JSONDecoder().decode(JSONValue.self, from: data)
    } catch let error as DecodingError {
      throw ModelError.invalidJSON(location: location, detail: Self.describe(error))
    }
    guard case .object(let members) = value else {
      throw ModelError.notAnObject(location: location, key: nil)
    }
    try self.init(members: members, location: location, path: "")
  }

  private init(members: [String: JSONValue], location: String, path: String) throws {
    let reader = _Reader(members: members, location: location, path: path)
    self.location = location
    self.raw = members
    modelType = try reader.string("model_type")
    architectures = try reader.strings("architectures")
    vocabSize = try reader.int("vocab_size")
    hiddenSize = try reader.int("hidden_size")
    numHiddenLayers = try reader.int("num_hidden_layers")
    numAttentionHeads = try reader.int("num_attention_heads")
    numKeyValueHeads = try reader.int("num_key_value_heads")
    headDim = try reader.int("head_dim")
    intermediateSize = try reader.int("intermediate_size")
    ropeTheta = try reader.double("rope_theta")
    ropeScaling = reader.present("rope_scaling")
    maxPositionEmbeddings = try reader.int("max_position_embeddings")
    tieWordEmbeddings = try reader.bool("tie_word_embeddings")
    torchDType = try reader.string("torch_dtype") ?? reader.string("dtype")
    quantization = reader.present("quantization_config") ?? reader.present("quantization")

    var text: ModelConfig?
    for key in ["text_config", "llm_config", "language_config"] {
      if let members = try reader.object(key) {
        text = try ModelConfig(members: members, location: location, path: path + key + ".")
        break
      }
    }
    var vision: ModelConfig?
    if let members = try reader.object("vision_config") {
      vision = try ModelConfig(members: members, location: location, path: path + "vision_config.")
    }
    nested = Nested(text: text, vision: vision)
  }

  /// A key this type does not name (`depth`, `patch_size`), read as an integer when it is one.
  public func int(_ key: String) -> Int? { raw[key]?.intValue }

  private static func describe(_ error: DecodingError) -> String {
    switch error {
    case .dataCorrupted(let context), .typeMismatch(_, let context), .valueNotFound(_, let context),
      .keyNotFound(_, let context):
      let underlying = (context.underlyingError as? NSError)?.userInfo[NSDebugDescriptionErrorKey]
      return (underlying as? String) ?? context.debugDescription
    @unknown default:
      return "\(error)"
    }
  }
}

/// Nested configs, boxed so `ModelConfig` can contain its own type.
private final class Nested: Sendable {
  let text: ModelConfig?
  let vision: ModelConfig?
  init(text: ModelConfig?, vision: ModelConfig?) {
    self.text = text
    self.vision = vision
  }
}

/// Typed access to config keys that throws with the key's full dotted path.
struct _Reader {
  var members: [String: JSONValue]
  var location: String
  var path: String

  /// The value unless missing or `null`.
  func present(_ key: String) -> JSONValue? {
    guard let value = members[key], value != .null else { return nil }
    return value
  }

  private func mismatch(_ key: String, _ expected: String, _ found: JSONValue) -> ModelError {
    .wrongType(location: location, key: path + key, expected: expected, found: found.kindName)
  }

  func string(_ key: String) throws -> String? {
    guard let value = present(key) else { return nil }
    guard let string = value.stringValue else { throw mismatch(key, "a string", value) }
    return string
  }

  func strings(_ key: String) throws -> [String] {
    guard let value = present(key) else { return [] }
    guard let array = value.arrayValue else { throw mismatch(key, "an array of strings", value) }
    return try array.map {
      guard let string = $0.stringValue else { throw mismatch(key, "an array of strings", value) }
      return string
    }
  }

  func int(_ key: String) throws -> Int? {
    guard let value = present(key) else { return nil }
    guard let int = value.intValue else { throw mismatch(key, "an integer", value) }
    return int
  }

  func double(_ key: String) throws -> Double? {
    guard let value = present(key) else { return nil }
    guard let double = value.doubleValue else { throw mismatch(key, "a number", value) }
    return double
  }

  func bool(_ key: String) throws -> Bool? {
    guard let value = present(key) else { return nil }
    guard let bool = value.boolValue else { throw mismatch(key, "a boolean", value) }
    return bool
  }

  func object(_ key: String) throws -> [String: JSONValue]? {
    guard let value = present(key) else { return nil }
    guard let object = value.objectValue else {
      throw ModelError.notAnObject(location: location, key: path + key)
    }
    return object
  }
}
