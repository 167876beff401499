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
  /// `tokenizer.ggml.pre`) or SentencePiece BPE (`llama`: pieces and scores, byte fallback, a
  /// space prefix unless `add_space_prefix` is false), with BOS, EOS and whether to add them
  /// from the same keys llama.cpp reads. Control and user-defined tokens are matched in the
  /// text as added tokens.
  /// - Throws: `TokenizerError` naming the file and the key or setting that is not supported.
  public convenience init(gguf file: GGUFFile) throws {
    let location = file.location
    let values = file.values
    guard let kind = values["tokenizer.ggml.model"]?.stringValue else {
      throw TokenizerError.missingKey(file: location, key: "tokenizer.ggml.model")
    }
    guard kind == "gpt2" || kind == "llama" else {
      throw TokenizerError.unsupportedGGUFSetting(
        file: location, key: "tokenizer.ggml.model", value: kind, supported: ["gpt2", "llama"])
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
    var vocabulary: Vocabulary = [:]
    vocabulary.reserveCapacity(tokens.count)
    for (id, token) in tokens.enumerated() where vocabulary[ExactString(token)] == nil {
      vocabulary[ExactString(token)] = id
    }

    // SentencePiece vocabularies also list their unknown token as one to match in the text.
    let matched: Set<Int> =
      kind == "llama"
      ? [GGUFTokenType.control.rawValue, GGUFTokenType.userDefined.rawValue, GGUFTokenType.unknown.rawValue]
      : [GGUFTokenType.control.rawValue, GGUFTokenType.userDefined.rawValue]
    var addedTokens: [AddedToken] = []
    for (id, type) in types.enumerated() where matched.contains(type) {
      guard !tokens[id].isEmpty else { continue }
      addedTokens.append(
        AddedToken(id: id, content: tokens[id], normalized: false, special: type != GGUFTokenType.userDefined.rawValue))
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
    // llama.cpp adds BOS unless told not to for SentencePiece models; gpt2 models add it only
    // when the file says so.
    func flag(_ key: String, default value: Bool) -> Bool {
      if case .bool(let set) = values[key] { return set }
      return value
    }
    let prefix = flag("tokenizer.ggml.add_bos_token", default: kind == "llama") ? bos.map { [$0] } ?? [] : []
    let suffix = flag("tokenizer.ggml.add_eos_token", default: false) ? eos.map { [$0] } ?? [] : []

    if kind == "llama" {
      let addSpacePrefix = flag("tokenizer.ggml.add_space_prefix", default: true)
      let unknownID = try tokenID("tokenizer.ggml.unknown_token_id")
        ?? types.firstIndex(of: GGUFTokenType.unknown.rawValue)
      self.init(
        location: location,
        model: BPEModel(byteSymbols: [], merges: [:], vocabulary: [:], ignoreMerges: false),
        normalizers: (addSpacePrefix ? [.prepend("\u{2581}")] : []) + [.replace(pattern: " ", content: "\u{2581}")],
        preTokenizerSteps: [], addPrefixSpace: false, addedTokens: addedTokens, idToToken: tokens,
        prefixIDs: prefix, suffixIDs: suffix, bosTokenID: bos, eosTokenID: eos,
        chatTemplate: values["tokenizer.chat_template"]?.stringValue,
        pieceModel: .bpe(
          CharacterBPEModel(
            merges: BPEModel(
              byteSymbols: [Int32](repeating: -1, count: 256),
              merges: try Self.sentencePieceMerges(tokens: tokens, vocabulary: vocabulary, values: values, file: location),
              vocabulary: vocabulary, ignoreMerges: false),
            characterIDs: Self.characterIDs(vocabulary),
            byteFallback: ByteFallbackTable(vocabulary: { vocabulary[ExactString($0)] }),
            unknownID: unknownID.map { Int32($0) }, fuseUnknown: true)),
        metaspace: nil,
        pieceDecoders: [.replace(pattern: "\u{2581}", content: " "), .byteFallback, .fuse]
          + (addSpacePrefix ? [.strip(content: " ", start: 1, stop: 0)] : []))
      return
    }

    let preName = values["tokenizer.ggml.pre"]?.stringValue ?? "gpt-2"
    guard let pre = Self.ggufPreTokenizer(preName) else {
      throw TokenizerError.unsupportedGGUFSetting(
        file: location, key: "tokenizer.ggml.pre", value: preName, supported: Self.ggufPreTokenizers)
    }
    var byteSymbols = [Int32](repeating: 0, count: 256)
    for byte in 0..<256 {
      byteSymbols[byte] = vocabulary[ExactString(String(ByteLevel.scalarForByte[byte]))].map { Int32($0) } ?? -1
    }
    // A vocabulary of single bytes needs no merges, and a file may leave the key out.
    let mergeList =
      values["tokenizer.ggml.merges"] == nil ? [] : try Self.ggufStrings(values, "tokenizer.ggml.merges", file: location)
    let merges = try Self.readMerges(mergeList, vocabulary: vocabulary, file: location)
    let model = BPEModel(
      byteSymbols: byteSymbols, merges: merges, vocabulary: vocabulary, ignoreMerges: pre.ignoreMerges)

    self.init(
      location: location, model: model, normalizers: pre.normalizers, preTokenizerSteps: pre.steps,
      addPrefixSpace: false, addedTokens: addedTokens, idToToken: tokens, prefixIDs: prefix,
      suffixIDs: suffix, bosTokenID: bos, eosTokenID: eos,
      chatTemplate: values["tokenizer.chat_template"]?.stringValue)
  }

  /// The merges a SentencePiece BPE vocabulary implies, ranked as `tokenizers`' conversion of
  /// Llama's tokenizer ranks them (transformers' `SentencePieceExtractor`): every split of a
  /// piece into two pieces of the vocabulary, ordered by the whole piece's score, highest first,
  /// then by piece id and by the ids of the halves.
  static func sentencePieceMerges(
    tokens: [String], vocabulary: Vocabulary, values: [String: GGUFValue], file: String
  ) throws -> [UInt64: UInt64] {
    guard case .array(_, let items) = values["tokenizer.ggml.scores"], items.count == tokens.count else {
      throw TokenizerError.missingKey(file: file, key: "tokenizer.ggml.scores as \(tokens.count) numbers, one per token")
    }
    let scores: [Double] = items.map { item in
      switch item {
      case .float32(let v): Double(v)
      case .float64(let v): v
      default: Double(item.intValue ?? 0)
      }
    }
    var candidates: [(left: Int32, right: Int32, merged: Int32, score: Double)] = []
    for (id, token) in tokens.enumerated() where vocabulary[ExactString(token)] == id {
      let scalars = Array(token.unicodeScalars)
      guard scalars.count > 1 else { continue }
      var local: [(left: Int32, right: Int32)] = []
      for cut in 1..<scalars.count {
        var left = String.UnicodeScalarView()
        left.append(contentsOf: scalars[..<cut])
        var right = String.UnicodeScalarView()
        right.append(contentsOf: scalars[cut...])
        guard let l = vocabulary[ExactString(String(left))], let r = vocabulary[ExactString(String(right))] else { continue }
        local.append((Int32(l), Int32(r)))
      }
      local.sort { ($0.left, $0.right) < ($1.left, $1.right) }
      for pair in local { candidates.append((pair.left, pair.right, Int32(id), scores[id])) }
    }
    // A stable sort by score, highest first, as Python's `sorted(..., reverse=True)`.
    let order = candidates.indices.sorted { a, b in
      candidates[a].score != candidates[b].score ? candidates[a].score > candidates[b].score : a < b
    }
    var merges: [UInt64: UInt64] = [:]
    merges.reserveCapacity(order.count)
    for (rank, index) in order.enumerated() {
      let merge = candidates[index]
      let key = BPEModel.pairKey(merge.left, merge.right)
      if merges[key] == nil { merges[key] = UInt64(rank) << 32 | UInt64(UInt32(merge.merged)) }
    }
    return merges
  }

  /// The id of every piece that is a single character.
  static func characterIDs(_ vocabulary: Vocabulary) -> [UInt32: Int32] {
    var ids: [UInt32: Int32] = [:]
    for (token, id) in vocabulary {
      let scalars = token.string.unicodeScalars
      if scalars.count == 1, let scalar = scalars.first { ids[scalar.value] = Int32(id) }
    }
    return ids
  }

  /// A metadata array of strings.
  static func ggufStrings(_ values: [String: GGUFValue], _ key: String, file: String) throws -> [String] {
    guard case .array(.string, let items) = values[key] else {
      throw TokenizerError.missingKey(file: file, key: "\(key) as an array of strings")
    }
    return items.map { $0.stringValue ?? "" }
  }
}
