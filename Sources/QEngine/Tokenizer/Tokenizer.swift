import Foundation
import QFormats

/// A tokenizer read from a Hugging Face `tokenizer.json`, the model picked from its `model.type`
/// and pre-tokenizer, giving the same ids as the `tokenizers` package: byte-level BPE (GPT-2,
/// SmolLM2, Qwen2, Llama 3), SentencePiece-style BPE with byte fallback (Llama 2, Mistral,
/// Gemma) and Unigram (T5, ALBERT).
public final class Tokenizer: @unchecked Sendable {
  /// Where the tokenizer was read from, for messages.
  public let location: String
  let model: BPEModel
  let normalizers: [TextNormalizer]
  let preTokenizerSteps: [PreTokenizerStep]
  /// `ByteLevel` `add_prefix_space`: a space before each piece that does not start with one.
  let addPrefixSpace: Bool
  let rawMatcher: AddedTokenMatcher
  let normalizedMatcher: AddedTokenMatcher
  let addedTokens: [Int: AddedToken]
  /// Ids the post-processor puts around a single sequence when special tokens are added.
  let prefixIDs: [Int]
  let suffixIDs: [Int]
  /// Decoded bytes of every id, in one arena.
  let tokenBytes: [UInt8]
  let tokenByteOffsets: [Int]
  let tokenToID: Vocabulary
  let chatTemplate: String?
  /// The SentencePiece-style model (BPE over characters or Unigram), nil for byte-level BPE.
  let pieceModel: PieceModel?
  /// The `Metaspace` pre-tokenizer of a SentencePiece-style tokenizer, nil when it has none.
  let metaspace: Metaspace?
  /// The decoder chain of a SentencePiece-style tokenizer.
  let pieceDecoders: [PieceDecoder]

  /// Id of the beginning-of-sequence token, from `tokenizer_config.json` or the post-processor.
  public let bosTokenID: Int?
  /// Id of the end-of-sequence token, from `tokenizer_config.json`.
  public let eosTokenID: Int?

  private let cacheLock = NSLock()
  private var sharedCache: WordCache? = WordCache()

  /// The id evaluation puts first in every window: the BOS of a SentencePiece-style tokenizer
  /// that adds one (Llama 2 and Gemma are trained with it), nil for byte-level tokenizers,
  /// whose windows are scored as they always were.
  public var windowStartTokenID: Int? {
    guard pieceModel != nil, let bosTokenID, prefixIDs.first == bosTokenID else { return nil }
    return bosTokenID
  }

  /// Whether encoding with special tokens puts BOS first.
  public var addsBOSToken: Bool { bosTokenID != nil && prefixIDs.first == bosTokenID }

  /// Number of ids, the model's vocabulary plus added tokens.
  public var vocabularySize: Int { tokenByteOffsets.count - 1 }

  /// The id of a token spelled as in the vocabulary (or an added token's content).
  public func id(of token: String) -> Int? { tokenToID[ExactString(token)] }

  /// Whether both tokenizers give every spelling the same id (their vocabularies and added
  /// tokens agree), so ids of one mean the same tokens in the other.
  public func hasSameVocabulary(as other: Tokenizer) -> Bool { tokenToID == other.tokenToID }

  /// Whether an id is an added token marked special (skipped by `decode` when asked).
  public func isSpecial(_ id: Int) -> Bool { addedTokens[id]?.special ?? false }

  /// Ids of a text; `addSpecialTokens` applies the post-processor (BOS/EOS) as
  /// `tokenizers`' `encode(text, add_special_tokens=)` does. Added and special tokens written
  /// in the text are always recognised.
  public func encode(_ text: String, addSpecialTokens: Bool = true) -> [Int] {
    var cache = takeCache()
    var ids: [Int32] = []
    ids.reserveCapacity(text.utf8.count / 3 + 8)
    for (index, segment) in rawMatcher.split(text[...]).enumerated() {
      switch segment {
      case .token(let id):
        ids.append(Int32(id))
      case .text(let piece):
        let normalized = TextNormalizer.apply(normalizers, to: piece)
        for (innerIndex, inner) in normalizedMatcher.split(normalized[...]).enumerated() {
          switch inner {
          case .token(let id):
            ids.append(Int32(id))
          case .text(let plain):
            if let pieceModel {
              let atStart = index == 0 && innerIndex == 0 && piece.startIndex == text.startIndex
              encodePieces(plain, atStart: atStart, model: pieceModel, into: &ids, cache: &cache)
            } else {
              encodePlain(plain, into: &ids, cache: &cache)
            }
          }
        }
      }
    }
    putCache(cache)
    var result: [Int] = []
    result.reserveCapacity(ids.count + prefixIDs.count + suffixIDs.count)
    if addSpecialTokens { result.append(contentsOf: prefixIDs) }
    for id in ids { result.append(Int(id)) }
    if addSpecialTokens { result.append(contentsOf: suffixIDs) }
    return result
  }

  private func encodePlain(_ piece: Substring, into ids: inout [Int32], cache: inout WordCache) {
    var string = String(piece)
    if addPrefixSpace && !string.hasPrefix(" ") { string = " " + string }
    let text = ScalarText(string)
    let ranges = text.preTokenize(preTokenizerSteps)
    text.utf8.withUnsafeBufferPointer { utf8 in
      text.byteOffsets.withUnsafeBufferPointer { offsets in
        for range in ranges {
          let start = Int(offsets[range.lowerBound])
          let end = Int(offsets[range.upperBound])
          let bytes = UnsafeBufferPointer(rebasing: utf8[start..<end])
          if bytes.count > WordCache.maximumWordLength {
            model.encode(bytes, into: &ids)
            continue
          }
          let hash = WordCache.hash(bytes)
          if cache.lookup(bytes, hash: hash, into: &ids) { continue }
          let first = ids.count
          model.encode(bytes, into: &ids)
          cache.insert(bytes, hash: hash, ids: ids[first...])
        }
      }
    }
  }

  /// A SentencePiece-style segment: `Metaspace` words (or the whole segment), each through the model.
  private func encodePieces(
    _ piece: Substring, atStart: Bool, model: PieceModel, into ids: inout [Int32], cache: inout WordCache
  ) {
    let words = metaspace?.words(of: piece, atStart: atStart) ?? [piece]
    for word in words {
      var utf8 = Array(word.utf8)
      if utf8.count > WordCache.maximumWordLength {
        model.encode(word, into: &ids)
        continue
      }
      utf8.withUnsafeMutableBufferPointer { buffer in
        let bytes = UnsafeBufferPointer(buffer)
        let hash = WordCache.hash(bytes)
        if cache.lookup(bytes, hash: hash, into: &ids) { return }
        let first = ids.count
        model.encode(word, into: &ids)
        cache.insert(bytes, hash: hash, ids: ids[first...])
      }
    }
  }

  private func takeCache() -> WordCache {
    cacheLock.lock()
    defer { cacheLock.unlock() }
    let cache = sharedCache ?? WordCache()
    sharedCache = nil
    return cache
  }

  private func putCache(_ cache: WordCache) {
    cacheLock.lock()
    defer { cacheLock.unlock() }
    sharedCache = cache
  }

  /// Text of ids. Byte-level: the bytes of each token joined, invalid UTF-8 replaced by U+FFFD
  /// as `tokenizers`' byte-level decoder does; SentencePiece-style: the file's decoder chain.
  /// Unknown ids are left out, as there.
  public func decode(_ ids: [Int], skipSpecialTokens: Bool = false) -> String {
    if pieceModel != nil {
      var tokens: [String] = []
      tokens.reserveCapacity(ids.count)
      for id in ids where id >= 0 && id < vocabularySize {
        if skipSpecialTokens && isSpecial(id) { continue }
        guard tokenByteOffsets[id] < tokenByteOffsets[id + 1] else { continue }
        tokens.append(String(decoding: tokenBytes[tokenByteOffsets[id]..<tokenByteOffsets[id + 1]], as: UTF8.self))
      }
      return PieceDecoder.decode(tokens, with: pieceDecoders)
    }
    var bytes: [UInt8] = []
    bytes.reserveCapacity(ids.count * 4)
    for id in ids where id >= 0 && id < vocabularySize {
      if skipSpecialTokens && isSpecial(id) { continue }
      bytes.append(contentsOf: tokenBytes[tokenByteOffsets[id]..<tokenByteOffsets[id + 1]])
    }
    return String(decoding: bytes, as: UTF8.self)
  }

  init(
    location: String, model: BPEModel, normalizers: [TextNormalizer],
    preTokenizerSteps: [PreTokenizerStep], addPrefixSpace: Bool, addedTokens: [AddedToken],
    idToToken: [String?], prefixIDs: [Int], suffixIDs: [Int], bosTokenID: Int?, eosTokenID: Int?,
    chatTemplate: String?, pieceModel: PieceModel? = nil, metaspace: Metaspace? = nil,
    pieceDecoders: [PieceDecoder] = []
  ) {
    self.pieceModel = pieceModel
    self.metaspace = metaspace
    self.pieceDecoders = pieceDecoders
    self.location = location
    self.model = model
    self.normalizers = normalizers
    self.preTokenizerSteps = preTokenizerSteps
    self.addPrefixSpace = addPrefixSpace
    let raw = addedTokens.filter { !$0.normalized }
    let normalized = addedTokens.filter(\.normalized)
    rawMatcher = AddedTokenMatcher(tokens: raw, patterns: raw.map(\.content))
    normalizedMatcher = AddedTokenMatcher(
      tokens: normalized,
      patterns: normalized.map { TextNormalizer.apply(normalizers, to: $0.content[...]) })
    var byID: [Int: AddedToken] = [:]
    for token in addedTokens { byID[token.id] = token }
    self.addedTokens = byID
    var arena: [UInt8] = []
    var offsets: [Int] = [0]
    var toID: Vocabulary = [:]
    offsets.reserveCapacity(idToToken.count + 1)
    for (id, token) in idToToken.enumerated() {
      let spelling = byID[id]?.content ?? token
      if let spelling {
        if pieceModel == nil, let bytes = ByteLevel.decode(spelling) {
          arena.append(contentsOf: bytes)
        } else {
          arena.append(contentsOf: Array(spelling.utf8))
        }
        toID[ExactString(spelling)] = id
      }
      offsets.append(arena.count)
    }
    tokenBytes = arena
    tokenByteOffsets = offsets
    tokenToID = toID
    self.prefixIDs = prefixIDs
    self.suffixIDs = suffixIDs
    self.bosTokenID = bosTokenID
    self.eosTokenID = eosTokenID
    self.chatTemplate = chatTemplate
  }
}

/// The name from when byte-level BPE was the only model read; the same type.
public typealias BPETokenizer = Tokenizer
