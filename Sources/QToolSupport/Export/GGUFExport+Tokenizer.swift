import Foundation
import QFormats

extension GGUFExport {
  /// The `tokenizer.ggml.*` keys llama.cpp needs to run a byte-level BPE model, read from a
  /// Hugging Face tokenizer.json (and the bos/eos choices of its post-processor).
  ///
  /// Tokens are listed by id up to `vocabSize` (the embedding's row count); ids the tokenizer
  /// does not use become `[PAD<id>]` entries of type unused, as llama.cpp's converter writes them.
  /// The pre-tokenizer name (`tokenizer.ggml.pre`) is chosen from the pre-tokenizer's shape:
  /// Qwen2's split regex gives `qwen2`, Llama 3's `llama-bpe`, SmolLM's digit split `smollm`,
  /// anything else byte-level `gpt2`.
  static func tokenizerKeyValues(_ data: Data, vocabSize: Int, location: String) throws
    -> [(key: String, value: GGUFValue)]
  {
    let file = location + "/tokenizer.json"
    guard let root = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
      let model = root["model"] as? [String: Any]
    else {
      throw ExportError.invalidConfig(location: file, key: "model", reason: "is not a tokenizer.json object")
    }
    guard (model["type"] as? String) == "BPE", let vocab = model["vocab"] as? [String: Int] else {
      throw ExportError.invalidConfig(
        location: file, key: "model.type",
        reason: "is '\(model["type"] as? String ?? "missing")'; only byte-level BPE converts to GGUF here")
    }
    var tokens = [String?](repeating: nil, count: vocabSize)
    var types = [Int32](repeating: 5, count: vocabSize)
    func place(_ token: String, _ id: Int, _ type: Int32) throws {
      guard id >= 0, id < vocabSize else {
        throw ExportError.invalidConfig(
          location: file, key: "vocab", reason: "token id \(id) is outside the embedding's \(vocabSize) rows")
      }
      tokens[id] = token
      types[id] = type
    }
    for (token, id) in vocab { try place(token, id, 1) }
    var special: [String: Int] = [:]
    for case let added as [String: Any] in (root["added_tokens"] as? [Any]) ?? [] {
      guard let content = added["content"] as? String, let id = added["id"] as? Int else { continue }
      let isSpecial = added["special"] as? Bool ?? false
      try place(content, id, isSpecial ? 3 : 4)
      if isSpecial { special[content] = id }
    }
    let tokenList = tokens.enumerated().map { GGUFValue.string($0.element ?? "[PAD\($0.offset)]") }

    let merges: [GGUFValue] = ((model["merges"] as? [Any]) ?? []).compactMap { merge in
      if let text = merge as? String { return .string(text) }
      if let pair = merge as? [String], pair.count == 2 { return .string(pair[0] + " " + pair[1]) }
      return nil
    }

    var values: [(key: String, value: GGUFValue)] = [
      ("tokenizer.ggml.model", .string("gpt2")),
      ("tokenizer.ggml.pre", .string(preTokenizerName(root["pre_tokenizer"]))),
      ("tokenizer.ggml.tokens", .array(elementType: .string, tokenList)),
      ("tokenizer.ggml.token_type", .array(elementType: .int32, types.map { .int32($0) })),
      ("tokenizer.ggml.merges", .array(elementType: .string, merges)),
    ]
    // The end-of-text token of byte-level BPE models; chat models end turns with <|im_end|>.
    let bos = special["<|begin_of_text|>"] ?? special["<|im_start|>"] ?? special["<|endoftext|>"]
    let eos = special["<|eot_id|>"] ?? special["<|im_end|>"] ?? special["<|endoftext|>"]
    if let bos { values.append(("tokenizer.ggml.bos_token_id", .uint32(UInt32(bos)))) }
    if let eos { values.append(("tokenizer.ggml.eos_token_id", .uint32(UInt32(eos)))) }
    if let pad = special["<|endoftext|>"] {
      values.append(("tokenizer.ggml.padding_token_id", .uint32(UInt32(pad))))
    }
    values.append(("tokenizer.ggml.add_bos_token", .bool(addsBOS(root["post_processor"]))))
    return values
  }

  private static func preTokenizerName(_ preTokenizer: Any?) -> String {
    let text = (try? JSONSerialization.data(withJSONObject: preTokenizer ?? [:]))
      .map { String(decoding: $0, as: UTF8.self) } ?? ""
    if text.contains(#"\\p{N}{1,3}"#) { return "llama-bpe" }
    if text.contains(#"[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}"#) { return "qwen2" }
    if text.contains("\"Digits\"") && text.contains("\"individual_digits\":true") { return "smollm" }
    return "gpt2"
  }

  /// Whether the post-processor prepends a token (a TemplateProcessing whose single template
  /// starts with a special token).
  private static func addsBOS(_ postProcessor: Any?) -> Bool {
    guard let processor = postProcessor as? [String: Any],
      (processor["type"] as? String) == "TemplateProcessing",
      let single = processor["single"] as? [[String: Any]], let first = single.first
    else { return false }
    return first["SpecialToken"] != nil
  }
}
