import QFormats

extension Tokenizer {
  /// llama.cpp's token types (`tokenizer.ggml.token_type`).
  enum GGUFTokenType: Int {
    case normal = 1, unknown, control, userDefined, unused, byte
  }

  /// The pre-tokenizer each `tokenizer.ggml.pre` name stands for, as the Hugging Face
  /// tokenizer.json of the models llama.cpp gives that name spells it.
  static func ggufPreTokenizer(_ name: String) -> (steps: [PreTokenizerStep], normalizers: [TextNormalizer], ignoreMerges: Bool)? {
    switch name {
    case "gpt-2": ([.gpt2], [], false)
    case "smollm": ([.digits(individual: true), .gpt2], [], false)
    case "qwen2": ([.llama3(maxDigits: 1)], [.nfc], false)
    case "llama-bpe", "llama3": ([.llama3(maxDigits: 3)], [], true)
    default: nil
    }
  }

  /// The GGUF pre-tokenizer names read, in the order messages list them.
  static let ggufPreTokenizers = ["gpt-2", "smollm", "qwen2", "llama-bpe"]

  /// The tokenizer a GGUF file carries in its `tokenizer.ggml.*` metadata: byte-level BPE
  /// (`tokenizer.ggml.model` `gpt2`: tokens, merges and the pre-tokenizer named by
  /// `tokenizer.ggml.pre`), with BOS, EOS and whether to add them from the same keys
  /// llama.cpp reads. Control and user-defined tokens are matched in the text as added tokens.
  /// - Throws: `TokenizerError` naming the file and the key or setting that is not supported.
  public convenience init(gguf file: GGUFFile) throws {
    let location = file.location
    let values = file.values
    guard let kind = values["tokenizer.ggml.model"]?.stringValue else {
      throw TokenizerError.missingKey(file: location, key: "tokenizer.ggml.model")
    }
    guard kind == "gpt2" else {
      throw TokenizerError.unsupportedGGUFSetting(
        file: location, key: "tokenizer.ggml.model", value: kind, supported: ["gpt2"])
    }
    let tokens = try Self.ggufStrings(values, "tokenizer.ggml.tokens", file: location)
    guard tokens.count < Int(Int32.max) else {
      throw TokenizerError.unreadable(file: location, reason: "has \(tokens.count) tokens, more than ids can number")
    }
    let types: [Int]
    if values["tokenizer.ggml.token_type"] != nil {
      guard case .array(_, let items) = values["tokenizer.ggml.token_type"], items.count == tokens.count else {
        throw TokenizerError.missingKey(
          file: location, key: "tokenizer.ggml.token_type as \(tokens.count) integers, one per token")
      }
      types = items.map { $0.intValue ?? GGUFTokenType.normal.rawValue }
    } else {
      types = [Int](repeating: GGUFTokenType.normal.rawValue, count: tokens.count)
    }
    let preName = values["tokenizer.ggml.pre"]?.stringValue ?? "gpt-2"
    guard let pre = Self.ggufPreTokenizer(preName) else {
      throw TokenizerError.unsupportedGGUFSetting(
        file: location, key: "tokenizer.ggml.pre", value: preName, supported: Self.ggufPreTokenizers)
    }

    var vocabulary: [String: Int] = [:]
    vocabulary.reserveCapacity(tokens.count)
    for (id, token) in tokens.enumerated() where vocabulary[token] == nil { vocabulary[token] = id }
    var byteSymbols = [Int32](repeating: 0, count: 256)
    for byte in 0..<256 {
      byteSymbols[byte] = vocabulary[String(ByteLevel.scalarForByte[byte])].map { Int32($0) } ?? -1
    }
    // A vocabulary of single bytes needs no merges, and a file may leave the key out.
    let mergeList =
      values["tokenizer.ggml.merges"] == nil ? [] : try Self.ggufStrings(values, "tokenizer.ggml.merges", file: location)
    let merges = try Self.readMerges(mergeList, vocabulary: vocabulary, file: location)
    let model = BPEModel(
      byteSymbols: byteSymbols, merges: merges, vocabulary: vocabulary, ignoreMerges: pre.ignoreMerges)

    var addedTokens: [AddedToken] = []
    for (id, type) in types.enumerated()
    where type == GGUFTokenType.control.rawValue || type == GGUFTokenType.userDefined.rawValue {
      guard !tokens[id].isEmpty else { continue }
      addedTokens.append(
        AddedToken(id: id, content: tokens[id], normalized: false, special: type == GGUFTokenType.control.rawValue))
    }

    func tokenID(_ key: String) throws -> Int? {
      guard let value = values[key] else { return nil }
      guard let id = value.intValue, id >= 0, id < tokens.count else {
        throw TokenizerError.missingKey(file: location, key: "\(key) as an id below \(tokens.count)")
      }
      return id
    }
    let bos = try tokenID("tokenizer.ggml.bos_token_id")
    let eos = try tokenID("tokenizer.ggml.eos_token_id")
    // llama.cpp adds BOS unless told not to only for SentencePiece models; gpt2 models add it
    // only when the file says so.
    var prefix: [Int] = []
    var suffix: [Int] = []
    if case .bool(true) = values["tokenizer.ggml.add_bos_token"], let bos { prefix = [bos] }
    if case .bool(true) = values["tokenizer.ggml.add_eos_token"], let eos { suffix = [eos] }

    self.init(
      location: location, model: model, normalizers: pre.normalizers, preTokenizerSteps: pre.steps,
      addPrefixSpace: false, addedTokens: addedTokens, idToToken: tokens, prefixIDs: prefix,
      suffixIDs: suffix, bosTokenID: bos, eosTokenID: eos,
      chatTemplate: values["tokenizer.chat_template"]?.stringValue)
  }

  /// A metadata array of strings.
  static func ggufStrings(_ values: [String: GGUFValue], _ key: String, file: String) throws -> [String] {
    guard case .array(.string, let items) = values[key] else {
      throw TokenizerError.missingKey(file: file, key: "\(key) as an array of strings")
    }
    return items.map { $0.stringValue ?? "" }
  }
}
