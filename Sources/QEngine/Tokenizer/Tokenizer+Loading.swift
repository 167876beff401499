import Foundation
import QFormats

extension Tokenizer {
  /// Reads `tokenizer.json` and, when present, `tokenizer_config.json` from a model folder.
  /// - Throws: `TokenizerError` naming the file and the unsupported part.
  public convenience init(folder: URL) throws {
    let config = folder.appending(path: "tokenizer_config.json")
    let hasConfig: Bool
    do {
      hasConfig = try SideFile.exists(config.path)
    } catch {
      throw TokenizerError.unreadable(file: config.path, reason: "\(error)")
    }
    try self.init(tokenizerJSON: folder.appending(path: "tokenizer.json"), config: hasConfig ? config : nil)
  }

  /// Reads a `tokenizer.json` and an optional `tokenizer_config.json`.
  /// - Throws: `TokenizerError` naming the file and the unsupported part.
  public convenience init(tokenizerJSON: URL, config: URL?) throws {
    let file = tokenizerJSON.path
    let (root, data) = try Self.readObject(tokenizerJSON)
    let fileSize = data.count
    let configObject = try config.map { try Self.readObject($0).object } ?? [:]
    let configFile = config?.path ?? file

    guard let modelObject = root["model"] as? [String: Any] else {
      throw TokenizerError.missingKey(file: file, key: "model")
    }
    let modelType = modelObject["type"] as? String ?? (modelObject["merges"] != nil ? "BPE" : "unknown")
    if Self.isSentencePiece(root: root, modelType: modelType) {
      try self.init(
        sentencePiece: root, model: modelObject, type: modelType, data: data, file: file, fileSize: fileSize,
        config: configObject, configFile: configFile)
      return
    }
    guard modelType == "BPE" else { throw TokenizerError.unsupportedModel(file: file, type: modelType) }
    // Newer writers store absent affixes as empty strings, which change nothing.
    if !(modelObject["continuing_subword_prefix"] as? String ?? "").isEmpty
      || !(modelObject["end_of_word_suffix"] as? String ?? "").isEmpty
    {
      throw TokenizerError.unsupportedComponent(file: file, component: "model", type: "BPE with subword affixes")
    }
    if modelObject["byte_fallback"] as? Bool == true {
      throw TokenizerError.unsupportedComponent(file: file, component: "model", type: "BPE with byte_fallback")
    }
    if let dropout = modelObject["dropout"] as? Double, dropout > 0 {
      throw TokenizerError.unsupportedComponent(file: file, component: "model", type: "BPE with dropout")
    }
    let vocabulary = try Self.readVocabulary(data, file: file, fileSize: fileSize)
    var maximumID = vocabulary.values.max() ?? -1

    var byteSymbols = [Int32](repeating: 0, count: 256)
    for byte in 0..<256 {
      byteSymbols[byte] = vocabulary[ExactString(String(ByteLevel.scalarForByte[byte]))].map { Int32($0) } ?? -1
    }

    let merges = try Self.readMerges(modelObject["merges"], vocabulary: vocabulary, file: file)
    let model = BPEModel(
      byteSymbols: byteSymbols, merges: merges, vocabulary: vocabulary,
      ignoreMerges: modelObject["ignore_merges"] as? Bool ?? false)

    let normalizers = try Self.readNormalizers(root["normalizer"], file: file)
    let (steps, prefixSpace) = try Self.readPreTokenizer(root["pre_tokenizer"], file: file)
    try Self.checkDecoder(root["decoder"], file: file)

    let addedTokens = try Self.readAddedTokens(root["added_tokens"], vocabulary: vocabulary, file: file)
    for token in addedTokens { maximumID = max(maximumID, token.id) }

    var idToToken = [String?](repeating: nil, count: maximumID + 1)
    for (token, id) in vocabulary { idToToken[id] = token.string }
    var lookup = vocabulary
    for token in addedTokens { lookup[ExactString(token.content)] = token.id }

    var (prefix, suffix) = try Self.readPostProcessor(root["post_processor"], file: file, lookup: lookup)
    func tokenID(_ key: String) throws -> Int? {
      try Self.specialTokenID(key, config: configObject, configFile: configFile, lookup: lookup)
    }
    let bos = try tokenID("bos_token") ?? prefix.first
    let eos = try tokenID("eos_token")
    if configObject["add_bos_token"] as? Bool == true, let bos, prefix.first != bos { prefix.insert(bos, at: 0) }
    if configObject["add_eos_token"] as? Bool == true, let eos, suffix.last != eos { suffix.append(eos) }

    self.init(
      location: file, model: model, normalizers: normalizers, preTokenizerSteps: steps,
      addPrefixSpace: prefixSpace, addedTokens: addedTokens, idToToken: idToToken,
      prefixIDs: prefix, suffixIDs: suffix, bosTokenID: bos, eosTokenID: eos,
      chatTemplate: configObject["chat_template"] as? String)
  }

  /// `data` with each U+FEFF inside it written as the escape `\ufeff`, and one at the very
  /// start (a byte order mark) dropped.
  ///
  /// Foundation's JSON reader on Linux drops a raw U+FEFF inside a string, so the token "\u{FEFF}"
  /// of a SentencePiece vocabulary (Gemma 3's, as transformers writes it) would read as "" and
  /// its merges would name tokens that are not there. Escaped, it reads back as it is. Outside
  /// strings the character is not valid JSON anyway, but at the start of a file.
  static func escapingByteOrderMarks(_ data: Data) -> Data {
    let mark: [UInt8] = [0xEF, 0xBB, 0xBF]
    var bytes = [UInt8](data)
    if bytes.starts(with: mark) { bytes.removeFirst(3) }
    guard bytes.count >= 3 else { return Data(bytes) }
    var found = false
    for index in 0...(bytes.count - 3) where bytes[index] == 0xEF && bytes[index + 1] == 0xBB && bytes[index + 2] == 0xBF {
      found = true
      break
    }
    guard found else { return Data(bytes) }
    let escape = Array("\\ufeff".utf8)
    var out: [UInt8] = []
    out.reserveCapacity(bytes.count + 64)
    var index = 0
    while index < bytes.count {
      if index + 2 < bytes.count, bytes[index] == 0xEF, bytes[index + 1] == 0xBB, bytes[index + 2] == 0xBF {
        out += escape
        index += 3
      } else {
        out.append(bytes[index])
        index += 1
      }
    }
    return Data(out)
  }

  /// The file's top-level JSON object and the bytes it was read from.
  static func readObject(_ url: URL) throws -> (object: [String: Any], data: Data) {
    // Foundation's reader leaks a 4 KB buffer on an empty file (found by fuzz-tokenizer), and
    // an empty file is no tokenizer anyway.
    let data: Data
    do {
      data = try SideFile.read(url.path, limit: 1 << 30)
    } catch {
      throw TokenizerError.unreadable(file: url.path, reason: "\(error)")
    }
    if data.isEmpty {
      throw TokenizerError.unreadable(file: url.path, reason: "is empty")
    }
    let escaped = escapingByteOrderMarks(data)
    guard let value = try? JSONSerialization.jsonObject(with: escaped) else {
      // Say where: a truncated download, or the line and column of the syntax error.
      let problem = JSONSyntaxProblem.find(in: data).map(\.description) ?? "is not valid JSON"
      throw TokenizerError.unreadable(file: url.path, reason: problem)
    }
    guard let object = value as? [String: Any] else {
      throw TokenizerError.unreadable(file: url.path, reason: "is JSON but not an object")
    }
    return (object, escaped)
  }

  /// The `model.vocab` object of a BPE tokenizer.json: spelling to id, read from the file's bytes
  /// so that spellings only canonically equal keep their own ids (Foundation's dictionary would
  /// merge them), each id bounded by the file's size.
  static func readVocabulary(_ data: Data, file: String, fileSize: Int) throws -> Vocabulary {
    let members: [(key: String, value: Int?)]?
    do {
      members = try JSONObjectMembers.integers(at: ["model", "vocab"], in: data)
    } catch {
      throw TokenizerError.unreadable(file: file, reason: "\(error)")
    }
    guard let members else { throw TokenizerError.missingKey(file: file, key: "model.vocab") }
    var vocabulary: Vocabulary = [:]
    vocabulary.reserveCapacity(members.count)
    for (token, value) in members {
      guard let id = value, id >= 0, id < Int(Int32.max) else {
        throw TokenizerError.missingKey(file: file, key: "model.vocab.\(token)")
      }
      // The id table is sized by the largest id; a real vocabulary spends more than a byte on
      // every id, so an id beyond the file's size cannot be genuine and would allocate gigabytes.
      guard id < fileSize else {
        throw TokenizerError.unreadable(
          file: file, reason: "token '\(token)' has id \(id), more than a \(fileSize)-byte file can number")
      }
      vocabulary[ExactString(token)] = id
    }
    return vocabulary
  }

  /// Added tokens with the ids `tokenizers` gives them when loading: the vocabulary's id when
  /// the content is in it, else the next id after the vocabulary or the last added token (the
  /// `id` written in the file is not used, as there).
  static func readAddedTokens(_ value: Any?, vocabulary: Vocabulary, file: String) throws -> [AddedToken] {
    var tokens: [AddedToken] = []
    var idOfContent: Vocabulary = [:]
    var indexOfID: [Int: Int] = [:]
    for entry in value as? [[String: Any]] ?? [] {
      guard let content = entry["content"] as? String else {
        throw TokenizerError.missingKey(file: file, key: "added_tokens.content")
      }
      var token = AddedToken(
        id: 0, content: content, singleWord: entry["single_word"] as? Bool ?? false,
        leftStrip: entry["lstrip"] as? Bool ?? false, rightStrip: entry["rstrip"] as? Bool ?? false,
        normalized: entry["normalized"] as? Bool ?? !(entry["special"] as? Bool ?? false),
        special: entry["special"] as? Bool ?? false)
      if content.isEmpty { continue }
      if let existing = idOfContent[ExactString(content)], let index = indexOfID[existing] {
        token.id = existing
        tokens[index] = token
        continue
      }
      if let id = vocabulary[ExactString(content)] {
        token.id = id
      } else if let last = idOfContent.values.max(), last >= vocabulary.count || vocabulary.isEmpty {
        token.id = last + 1
      } else {
        token.id = vocabulary.count
      }
      idOfContent[ExactString(content)] = token.id
      if let index = indexOfID[token.id] {
        tokens[index] = token
      } else {
        indexOfID[token.id] = tokens.count
        tokens.append(token)
      }
    }
    return tokens
  }

  static func readMerges(_ value: Any?, vocabulary: Vocabulary, file: String) throws -> [UInt64: UInt64] {
    guard let list = value as? [Any] else { throw TokenizerError.missingKey(file: file, key: "model.merges") }
    var merges: [UInt64: UInt64] = [:]
    merges.reserveCapacity(list.count)
    for (rank, entry) in list.enumerated() {
      let left: String
      let right: String
      if let pair = entry as? String {
        let parts = pair.split(separator: " ", maxSplits: 1, omittingEmptySubsequences: false)
        guard parts.count == 2 else { throw TokenizerError.mergeOutOfVocabulary(file: file, merge: pair) }
        left = String(parts[0])
        right = String(parts[1])
      } else if let pair = entry as? [String], pair.count == 2 {
        left = pair[0]
        right = pair[1]
      } else {
        throw TokenizerError.missingKey(file: file, key: "model.merges[\(rank)]")
      }
      guard let leftID = vocabulary[ExactString(left)], let rightID = vocabulary[ExactString(right)],
        let mergedID = vocabulary[ExactString(left + right)]
      else { throw TokenizerError.mergeOutOfVocabulary(file: file, merge: "\(left) \(right)") }
      merges[BPEModel.pairKey(Int32(leftID), Int32(rightID))] = UInt64(rank) << 32 | UInt64(mergedID)
    }
    return merges
  }

  static func readNormalizers(_ value: Any?, file: String) throws -> [TextNormalizer] {
    guard let object = value as? [String: Any] else { return [] }
    let type = object["type"] as? String ?? "unknown"
    switch type {
    case "NFC": return [.nfc]
    case "NFD": return [.nfd]
    case "NFKC": return [.nfkc]
    case "NFKD": return [.nfkd]
    case "Sequence":
      return try (object["normalizers"] as? [Any] ?? []).flatMap { try readNormalizers($0, file: file) }
    case "Prepend":
      guard let prefix = object["prepend"] as? String else {
        throw TokenizerError.missingKey(file: file, key: "normalizer.prepend")
      }
      return [.prepend(prefix)]
    case "Replace":
      guard let pattern = (object["pattern"] as? [String: Any])?["String"] as? String,
        let content = object["content"] as? String
      else {
        throw TokenizerError.unsupportedComponent(
          file: file, component: "normalizer", type: "Replace without a string pattern")
      }
      return [.replace(pattern: pattern, content: content)]
    default:
      throw TokenizerError.unsupportedComponent(file: file, component: "normalizer", type: type)
    }
  }

  static func readPreTokenizer(_ value: Any?, file: String) throws -> ([PreTokenizerStep], Bool) {
    guard let object = value as? [String: Any] else {
      throw TokenizerError.unsupportedComponent(file: file, component: "pre_tokenizer", type: "none")
    }
    let parts = object["type"] as? String == "Sequence" ? object["pretokenizers"] as? [Any] ?? [] : [object]
    var steps: [PreTokenizerStep] = []
    var prefixSpace = false
    var sawByteLevel = false
    for part in parts {
      let part = part as? [String: Any] ?? [:]
      let type = part["type"] as? String ?? "unknown"
      switch type {
      case "ByteLevel":
        if part["add_prefix_space"] as? Bool == true {
          // Applied per piece; only equivalent to one space per text segment when it comes first.
          guard steps.isEmpty else {
            throw TokenizerError.unsupportedComponent(
              file: file, component: "pre_tokenizer", type: "ByteLevel with add_prefix_space after another step")
          }
          prefixSpace = true
        }
        if part["use_regex"] as? Bool ?? true { steps.append(.gpt2) }
        sawByteLevel = true
      case "Digits":
        steps.append(.digits(individual: part["individual_digits"] as? Bool ?? false))
      case "Split":
        let pattern = part["pattern"] as? [String: Any]
        let regex = pattern?["Regex"] as? String ?? pattern?["String"] as? String ?? ""
        let behavior = part["behavior"] as? String ?? ""
        guard behavior == "Isolated", part["invert"] as? Bool != true else {
          throw TokenizerError.unsupportedComponent(file: file, component: "pre_tokenizer", type: "Split \(behavior)")
        }
        switch regex {
        case qwen2SplitPattern: steps.append(.llama3(maxDigits: 1))
        case llama3SplitPattern: steps.append(.llama3(maxDigits: 3))
        default: throw TokenizerError.unsupportedPattern(file: file, pattern: regex)
        }
      default:
        throw TokenizerError.unsupportedComponent(file: file, component: "pre_tokenizer", type: type)
      }
    }
    guard sawByteLevel else {
      throw TokenizerError.unsupportedComponent(file: file, component: "pre_tokenizer", type: "without ByteLevel")
    }
    return (steps, prefixSpace)
  }

  static func checkDecoder(_ value: Any?, file: String) throws {
    let type = (value as? [String: Any])?["type"] as? String ?? "none"
    guard type == "ByteLevel" else {
      throw TokenizerError.unsupportedComponent(file: file, component: "decoder", type: type)
    }
  }

  /// Ids before and after a single sequence: `TemplateProcessing`'s `single`, nothing for `ByteLevel`.
  static func readPostProcessor(_ value: Any?, file: String, lookup: Vocabulary) throws -> ([Int], [Int]) {
    guard let object = value as? [String: Any] else { return ([], []) }
    let type = object["type"] as? String ?? "unknown"
    switch type {
    case "ByteLevel":
      return ([], [])
    case "Sequence":
      var prefix: [Int] = []
      var suffix: [Int] = []
      for part in object["processors"] as? [Any] ?? [] {
        let (before, after) = try readPostProcessor(part, file: file, lookup: lookup)
        prefix += before
        suffix += after
      }
      return (prefix, suffix)
    case "TemplateProcessing":
      guard let single = object["single"] as? [[String: Any]] else {
        throw TokenizerError.missingKey(file: file, key: "post_processor.single")
      }
      let specials = object["special_tokens"] as? [String: Any] ?? [:]
      var prefix: [Int] = []
      var suffix: [Int] = []
      var seenSequence = false
      for item in single {
        if item["Sequence"] != nil {
          seenSequence = true
          continue
        }
        guard let special = item["SpecialToken"] as? [String: Any], let name = special["id"] as? String else {
          throw TokenizerError.missingKey(file: file, key: "post_processor.single item")
        }
        let ids = ((specials[name] as? [String: Any])?["ids"] as? [NSNumber])?.map(\.intValue)
          ?? lookup[ExactString(name)].map { [$0] }
        guard let ids else { throw TokenizerError.missingKey(file: file, key: "post_processor.special_tokens.\(name)") }
        if seenSequence { suffix += ids } else { prefix += ids }
      }
      return (prefix, suffix)
    default:
      throw TokenizerError.unsupportedComponent(file: file, component: "post_processor", type: type)
    }
  }

  /// The id of `key` (`bos_token`, `eos_token`) in tokenizer_config.json, given as a string or as
  /// an added-token object; `nil` when the config does not name one.
  static func specialTokenID(
    _ key: String, config: [String: Any], configFile: String, lookup: Vocabulary
  ) throws -> Int? {
    let value = config[key]
    let content = value as? String ?? (value as? [String: Any])?["content"] as? String
    guard let content else { return nil }
    guard let id = lookup[ExactString(content)] else {
      throw TokenizerError.missingKey(file: configFile, key: "\(key) '\(content)' in the vocabulary")
    }
    return id
  }
}
