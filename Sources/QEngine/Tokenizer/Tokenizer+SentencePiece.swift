import Foundation
import QFormats

extension Tokenizer {
  /// Whether a `tokenizer.json` is SentencePiece-style: a Unigram model, or a BPE model whose
  /// pre-tokenizer has no `ByteLevel` step (Llama 2, Mistral and Gemma conversions).
  static func isSentencePiece(root: [String: Any], modelType: String) -> Bool {
    if modelType == "Unigram" { return true }
    guard modelType == "BPE" else { return false }
    func hasByteLevel(_ value: Any?) -> Bool {
      guard let object = value as? [String: Any] else { return false }
      if object["type"] as? String == "ByteLevel" { return true }
      return (object["pretokenizers"] as? [Any] ?? []).contains(where: hasByteLevel)
    }
    return !hasByteLevel(root["pre_tokenizer"])
  }

  /// Reads a SentencePiece-style `tokenizer.json`: BPE over characters with byte fallback, or Unigram.
  convenience init(
    sentencePiece root: [String: Any], model modelObject: [String: Any], type modelType: String,
    data: Data, file: String, fileSize: Int, config configObject: [String: Any], configFile: String
  ) throws {
    var vocabulary: Vocabulary = [:]
    var idToToken: [String?] = []
    let model: PieceModel
    if modelType == "Unigram" {
      guard let list = modelObject["vocab"] as? [Any] else {
        throw TokenizerError.missingKey(file: file, key: "model.vocab")
      }
      var pieces: [(String, Double)] = []
      pieces.reserveCapacity(list.count)
      for (index, entry) in list.enumerated() {
        guard let pair = entry as? [Any], pair.count == 2, let piece = pair[0] as? String,
          let score = (pair[1] as? NSNumber)?.doubleValue
        else { throw TokenizerError.missingKey(file: file, key: "model.vocab[\(index)] as [piece, score]") }
        pieces.append((piece, score))
      }
      var unknownID: Int?
      if let value = modelObject["unk_id"], !(value is NSNull) {
        guard let id = (value as? NSNumber)?.intValue, id >= 0, id < pieces.count else {
          throw TokenizerError.missingKey(file: file, key: "model.unk_id within the \(pieces.count)-piece vocabulary")
        }
        unknownID = id
      }
      let unigram = UnigramModel(
        pieces: pieces, unknownID: unknownID, byteFallback: modelObject["byte_fallback"] as? Bool ?? false)
      vocabulary = unigram.pieceToID
      idToToken = pieces.map(\.0)
      model = .unigram(unigram)
    } else {
      if let dropout = modelObject["dropout"] as? Double, dropout > 0 {
        throw TokenizerError.unsupportedComponent(file: file, component: "model", type: "BPE with dropout")
      }
      vocabulary = try Self.readVocabulary(data, file: file, fileSize: fileSize)
      let merges = try Self.readMerges(modelObject["merges"], vocabulary: vocabulary, file: file)
      let characterIDs = Self.characterIDs(vocabulary)
      let unknownID = (modelObject["unk_token"] as? String).flatMap { vocabulary[ExactString($0)] }.map { Int32($0) }
      let byteFallback = modelObject["byte_fallback"] as? Bool ?? false
      model = .bpe(
        CharacterBPEModel(
          merges: BPEModel(
            byteSymbols: [Int32](repeating: -1, count: 256), merges: merges, vocabulary: vocabulary,
            ignoreMerges: modelObject["ignore_merges"] as? Bool ?? false),
          characterIDs: characterIDs,
          byteFallback: byteFallback ? ByteFallbackTable(vocabulary: { vocabulary[ExactString($0)] }) : nil,
          unknownID: unknownID, fuseUnknown: modelObject["fuse_unk"] as? Bool ?? false))
      idToToken = [String?](repeating: nil, count: (vocabulary.values.max() ?? -1) + 1)
      for (token, id) in vocabulary { idToToken[id] = token.string }
    }

    let normalizers = try Self.readNormalizers(root["normalizer"], file: file)
    let metaspace = try Self.readMetaspace(root["pre_tokenizer"], normalizers: normalizers, file: file)
    let decoders = try Self.readPieceDecoders(root["decoder"], file: file)

    let addedTokens = try Self.readAddedTokens(root["added_tokens"], vocabulary: vocabulary, file: file)
    if let last = addedTokens.map(\.id).max(), last >= idToToken.count {
      idToToken += [String?](repeating: nil, count: last + 1 - idToToken.count)
    }
    var lookup = vocabulary
    for token in addedTokens { lookup[ExactString(token.content)] = token.id }

    var (prefix, suffix) = try Self.readPostProcessor(root["post_processor"], file: file, lookup: lookup)
    func tokenID(_ key: String) throws -> Int? {
      try Self.specialTokenID(key, config: configObject, configFile: configFile, lookup: lookup)
    }
    let bos = try tokenID("bos_token") ?? prefix.first
    let eos = try tokenID("eos_token")
    // transformers' Llama and Gemma tokenizers rebuild the post-processor from these flags, so
    // when given they decide, both ways.
    if let add = configObject["add_bos_token"] as? Bool, let bos {
      prefix.removeAll { $0 == bos }
      if add { prefix.insert(bos, at: 0) }
    }
    if let add = configObject["add_eos_token"] as? Bool, let eos {
      suffix.removeAll { $0 == eos }
      if add { suffix.append(eos) }
    }

    self.init(
      location: file, model: BPEModel(byteSymbols: [], merges: [:], vocabulary: [:], ignoreMerges: false),
      normalizers: normalizers, preTokenizerSteps: [], addPrefixSpace: false, addedTokens: addedTokens,
      idToToken: idToToken, prefixIDs: prefix, suffixIDs: suffix, bosTokenID: bos, eosTokenID: eos,
      chatTemplate: configObject["chat_template"] as? String, pieceModel: model, metaspace: metaspace,
      pieceDecoders: decoders)
  }

  /// The `Metaspace` step of a SentencePiece-style pre-tokenizer, nil when there is none.
  ///
  /// A `Split` on a character that the normalizers have already replaced everywhere (Gemma 3
  /// splits on " " after its normalizer turned every space into "▁") never finds its pattern,
  /// so it is read as no step at all; any other `Split` is refused.
  static func readMetaspace(_ value: Any?, normalizers: [TextNormalizer], file: String) throws -> Metaspace? {
    guard let object = value as? [String: Any] else { return nil }
    let type = object["type"] as? String ?? "unknown"
    if type == "Sequence" {
      let parts = (object["pretokenizers"] as? [Any] ?? []).filter {
        !neverSplits($0 as? [String: Any] ?? [:], after: normalizers)
      }
      guard parts.count <= 1 else {
        throw TokenizerError.unsupportedComponent(
          file: file, component: "pre_tokenizer", type: "Sequence of \(parts.count) steps with a SentencePiece model")
      }
      return try parts.first.flatMap { try readMetaspace($0, normalizers: normalizers, file: file) }
    }
    if neverSplits(object, after: normalizers) { return nil }
    guard type == "Metaspace" else {
      throw TokenizerError.unsupportedComponent(file: file, component: "pre_tokenizer", type: type)
    }
    var metaspace = Metaspace()
    metaspace.replacement = try readReplacement(object, file: file, component: "pre_tokenizer")
    metaspace.prependScheme = try readPrependScheme(object, file: file, component: "pre_tokenizer")
    metaspace.split = object["split"] as? Bool ?? true
    return metaspace
  }

  static func readReplacement(_ object: [String: Any], file: String, component: String) throws -> Unicode.Scalar {
    let text = object["replacement"] as? String ?? object["str_rep"] as? String ?? "\u{2581}"
    guard text.unicodeScalars.count == 1, let scalar = text.unicodeScalars.first else {
      throw TokenizerError.unsupportedComponent(
        file: file, component: component, type: "Metaspace with replacement '\(text)' (one character expected)")
    }
    return scalar
  }

  /// `prepend_scheme`, or the older `add_prefix_space` (true meaning `always`).
  static func readPrependScheme(_ object: [String: Any], file: String, component: String) throws
    -> Metaspace.PrependScheme
  {
    if let name = object["prepend_scheme"] as? String {
      guard let scheme = Metaspace.PrependScheme(rawValue: name) else {
        throw TokenizerError.unsupportedComponent(
          file: file, component: component, type: "Metaspace with prepend_scheme '\(name)'")
      }
      return scheme
    }
    return object["add_prefix_space"] as? Bool ?? true ? .always : .never
  }

  /// Whether `object` is a `Split` on one literal character that no normalized text can hold:
  /// a normalizer replaces that character everywhere with text without it, and none after it
  /// can bring it back (a Unicode form could: NFKC maps U+00A0 to a space).
  static func neverSplits(_ object: [String: Any], after normalizers: [TextNormalizer]) -> Bool {
    guard object["type"] as? String == "Split",
      let pattern = (object["pattern"] as? [String: Any])?["String"] as? String,
      pattern.unicodeScalars.count == 1, let character = pattern.unicodeScalars.first
    else { return false }
    func holds(_ text: String) -> Bool { text.unicodeScalars.contains(character) }
    guard
      let removal = normalizers.lastIndex(where: {
        if case .replace(pattern, let content) = $0 { return !holds(content) }
        return false
      })
    else { return false }
    return normalizers[(removal + 1)...].allSatisfy {
      switch $0 {
      case .prepend(let text), .replace(_, let text): !holds(text)
      case .nfc, .nfd, .nfkc, .nfkd: false
      }
    }
  }

  /// The decoder chain of a SentencePiece-style tokenizer (`Replace`, `ByteFallback`, `Fuse`,
  /// `Strip`, `Metaspace`, or a `Sequence` of them).
  static func readPieceDecoders(_ value: Any?, file: String) throws -> [PieceDecoder] {
    guard let object = value as? [String: Any] else { return [] }
    let type = object["type"] as? String ?? "unknown"
    switch type {
    case "Sequence":
      return try (object["decoders"] as? [Any] ?? []).flatMap { try readPieceDecoders($0, file: file) }
    case "Replace":
      guard let pattern = (object["pattern"] as? [String: Any])?["String"] as? String,
        let content = object["content"] as? String
      else {
        throw TokenizerError.unsupportedComponent(file: file, component: "decoder", type: "Replace without a string pattern")
      }
      return [.replace(pattern: pattern, content: content)]
    case "ByteFallback":
      return [.byteFallback]
    case "Fuse":
      return [.fuse]
    case "Strip":
      let content = object["content"] as? String ?? " "
      guard content.unicodeScalars.count == 1, let scalar = content.unicodeScalars.first else {
        throw TokenizerError.unsupportedComponent(file: file, component: "decoder", type: "Strip of '\(content)'")
      }
      return [
        .strip(
          content: scalar, start: (object["start"] as? NSNumber)?.intValue ?? 0,
          stop: (object["stop"] as? NSNumber)?.intValue ?? 0)
      ]
    case "Metaspace":
      let replacement = try readReplacement(object, file: file, component: "decoder")
      let scheme = try readPrependScheme(object, file: file, component: "decoder")
      return [.metaspace(replacement: replacement, prepends: scheme != .never)]
    default:
      throw TokenizerError.unsupportedComponent(file: file, component: "decoder", type: type)
    }
  }
}
