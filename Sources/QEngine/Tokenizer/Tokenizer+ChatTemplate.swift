/// One turn of a conversation.
public struct ChatMessage: Sendable, Equatable {
  public var role: String
  public var content: String

  public init(role: String, content: String) {
    self.role = role
    self.content = content
  }
}

extension Tokenizer {
  /// Renders messages in the ChatML form (`<|im_start|>role\ncontent<|im_end|>\n`) that the
  /// SmolLM2-Instruct and Qwen2-Instruct templates produce, with the template's default system
  /// message when the first message is not a system one. No template engine is run: other
  /// templates are refused.
  /// - Throws: `TokenizerError.unsupportedChatTemplate` when there is no ChatML template.
  public func applyChatTemplate(messages: [ChatMessage], addGenerationPrompt: Bool = true) throws -> String {
    guard let template = chatTemplate else {
      throw TokenizerError.unsupportedChatTemplate(file: location, reason: "tokenizer_config.json has none")
    }
    guard template.contains("<|im_start|>"), template.contains("<|im_end|>") else {
      throw TokenizerError.unsupportedChatTemplate(file: location, reason: "not the ChatML form")
    }
    var text = ""
    if messages.first?.role != "system", let system = Self.defaultSystemMessage(in: template) {
      text += "<|im_start|>system\n\(system)<|im_end|>\n"
    }
    for message in messages {
      text += "<|im_start|>\(message.role)\n\(message.content)<|im_end|>\n"
    }
    if addGenerationPrompt { text += "<|im_start|>assistant\n" }
    return text
  }

  /// Ids of the rendered conversation (special tokens in it are matched, none added around it).
  public func encodeChat(messages: [ChatMessage], addGenerationPrompt: Bool = true) throws -> [Int] {
    encode(try applyChatTemplate(messages: messages, addGenerationPrompt: addGenerationPrompt), addSpecialTokens: false)
  }

  /// The literal system message a ChatML template writes when none is given: the text between
  /// `<|im_start|>system` plus a newline (real or escaped) and `<|im_end|>` inside one string literal.
  static func defaultSystemMessage(in template: String) -> String? {
    let marker = "<|im_start|>system"
    var searchStart = template.startIndex
    while let found = template.range(of: marker, range: searchStart..<template.endIndex) {
      searchStart = found.upperBound
      var rest = template[found.upperBound...]
      if rest.hasPrefix("\\n") {
        rest = rest.dropFirst(2)
      } else if rest.hasPrefix("\n") {
        rest = rest.dropFirst(1)
      } else {
        continue
      }
      guard let end = rest.range(of: "<|im_end|>") else { continue }
      let message = rest[..<end.lowerBound]
      if message.isEmpty || message.contains("'") || message.contains("\"") || message.contains("{") {
        continue
      }
      return String(message)
    }
    return nil
  }
}
