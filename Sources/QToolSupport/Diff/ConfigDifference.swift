import QFormats

/// One setting that differs between the two checkpoints, in plain words.
public struct ConfigChange: Codable, Sendable, Equatable {
  /// The config.json key, prefixed `text.` or `vision.` for the parts of a vision-language model.
  public var field: String
  /// The old value as text; absent when the old checkpoint does not state it.
  public var old: String?
  public var new: String?
  /// The sentence a person reads: `hidden size 576 -> 896`.
  public var text: String
}

extension ConfigChange {
  /// The differences in vocabulary, sizes, heads, rope settings, tying and model type.
  ///
  /// Sizes come from the recognised architecture (the config where there is one, else the
  /// tensor shapes); rope settings, tying and the model type only from a config. A value one
  /// side does not state is not reported, except rope scaling when both sides have a config
  /// (there, absent means none).
  public static func changes(
    old: (config: ModelConfig?, architecture: ArchitectureSummary),
    new: (config: ModelConfig?, architecture: ArchitectureSummary)
  ) -> [ConfigChange] {
    var out: [ConfigChange] = []
    /// Only values both sides state: an absent value is unknown, not different.
    func add(_ field: String, _ words: String, _ a: String?, _ b: String?, absentIsNone: Bool = false) {
      guard a != b, absentIsNone || (a != nil && b != nil) else { return }
      out.append(ConfigChange(field: field, old: a, new: b, text: "\(words) \(a ?? "none") -> \(b ?? "none")"))
    }
    let visionLanguage =
      old.architecture.kind == .visionLanguage || new.architecture.kind == .visionLanguage
    let parts: [(key: String, words: String, old: HyperParameters?, new: HyperParameters?)] =
      visionLanguage
      ? [
        ("text.", "text ", old.architecture.language, new.architecture.language),
        ("vision.", "vision ", old.architecture.vision, new.architecture.vision),
      ]
      : [("", "", old.architecture.hyperParameters, new.architecture.hyperParameters)]
    let sizes: [(String, String, KeyPath<HyperParameters, Int?>)] = [
      ("vocab_size", "vocabulary", \.vocabSize),
      ("hidden_size", "hidden size", \.hiddenSize),
      ("num_hidden_layers", "layers", \.layerCount),
      ("num_attention_heads", "attention heads", \.attentionHeads),
      ("num_key_value_heads", "key-value heads", \.keyValueHeads),
      ("head_dim", "head dim", \.headDim),
      ("intermediate_size", "intermediate size", \.intermediateSize),
    ]
    for part in parts {
      for (key, words, path) in sizes {
        add(
          part.key + key, part.words + words, part.old?[keyPath: path].map(String.init),
          part.new?[keyPath: path].map(String.init))
      }
    }
    let a = old.config.map { visionLanguage ? ($0.textConfig ?? $0) : $0 }
    let b = new.config.map { visionLanguage ? ($0.textConfig ?? $0) : $0 }
    add("rope_theta", "rope theta", a?.ropeTheta.map(numberText), b?.ropeTheta.map(numberText))
    if a != nil && b != nil {
      add(
        "rope_scaling", "rope scaling", a?.ropeScaling.flatMap(jsonText), b?.ropeScaling.flatMap(jsonText),
        absentIsNone: true)
    }
    add(
      "tie_word_embeddings", "tied word embeddings",
      (old.config?.tieWordEmbeddings ?? a?.tieWordEmbeddings).map { $0 ? "yes" : "no" },
      (new.config?.tieWordEmbeddings ?? b?.tieWordEmbeddings).map { $0 ? "yes" : "no" })
    add("model_type", "model type", old.config?.modelType, new.config?.modelType)
    return out
  }
}

/// Integral values without a fraction (`10000`), others in Swift's shortest form.
func numberText(_ value: Double) -> String {
  if value.rounded() == value, abs(value) < 1e15, let exact = Int(exactly: value) { return String(exact) }
  return "\(value)"
}

/// A compact JSON rendering with sorted keys; `nil` for JSON null.
func jsonText(_ value: JSONValue) -> String? {
  switch value {
  case .null: return nil
  case .bool(let b): return b ? "true" : "false"
  case .number(let n): return numberText(n)
  case .string(let s): return "\"\(s)\""
  case .array(let items): return "[" + items.map { jsonText($0) ?? "null" }.joined(separator: ", ") + "]"
  case .object(let members):
    return "{"
      + members.keys.sorted().map { "\"\($0)\": \(members[$0].flatMap(jsonText) ?? "null")" }
      .joined(separator: ", ") + "}"
  }
}
