import Foundation
import QCompute
import QEngine
import QFormats

/// Running a checkpoint's language model on text: what `qinspect --perplexity` and `--generate`
/// report.
public enum ModelEvaluation {
  /// Perplexity over non-overlapping (or strided) windows of a text file's tokens.
  public struct Perplexity: Codable, Sendable {
    public var text: String
    public var perplexity: Double
    public var meanNegativeLogLikelihood: Double
    public var scoredTokens: Int
    public var windows: Int
    public var context: Int
    public var stride: Int
    /// Which targets of a window were scored: `all` but the first, or the `second-half`.
    public var scoring: PerplexityScoring = .all
    public var seconds: Double

    enum CodingKeys: String, CodingKey {
      case text, perplexity
      case meanNegativeLogLikelihood = "mean_nll"
      case scoredTokens = "scored_tokens"
      case windows, context, stride, scoring, seconds
    }
  }

  /// A greedy continuation of a prompt.
  public struct Generation: Codable, Sendable {
    public var prompt: String
    /// The image file the prompt was given with (vision-language models), else absent.
    public var image: String?
    public var completion: String
    public var tokens: Int
    public var seconds: Double
    /// Tokens in the prompt (after the chat template), and the seconds from the start until the
    /// prompt had been through the model and the first new token was chosen; the rest of
    /// `seconds` went to the other `tokens - 1` decoding steps. Absent for prompts with an image.
    public var promptTokens: Int? = nil
    public var promptSeconds: Double? = nil

    /// Prompt tokens processed per second.
    public var promptTokensPerSecond: Double? {
      guard let promptTokens, let promptSeconds, promptSeconds > 0 else { return nil }
      return Double(promptTokens) / promptSeconds
    }

    /// New tokens per second after the first, which is counted with the prompt.
    public var generationTokensPerSecond: Double? {
      guard let promptSeconds, tokens > 1, seconds > promptSeconds else { return nil }
      return Double(tokens - 1) / (seconds - promptSeconds)
    }

    enum CodingKeys: String, CodingKey {
      case prompt, image, completion, tokens, seconds
      case promptTokens = "prompt_tokens"
      case promptSeconds = "prompt_seconds"
    }
  }

  /// The checkpoint's language model and tokenizer, loaded once for several evaluations.
  public struct LoadedModel {
    public let model: DecoderModel
    public let tokenizer: Tokenizer
    /// The whole vision-language model, when loaded for prompts with an image.
    public var visionLanguage: VisionLanguageModel? = nil
  }

  /// The prefix a checkpoint keeps its language model under: `language_model.` in a LLaVA
  /// checkpoint, empty in a plain decoder; the token embedding's name tells which (in a qpack,
  /// its logical name, the stored one carrying a part suffix when the embedding is packed).
  public static func languageModelPrefix(of source: any TensorSource) -> String {
    let suffix = "model.embed_tokens.weight"
    var names = source.tensors.lazy.map(\.name)
    if PackedCheckpoint.isPack(source), let pack = try? PackedCheckpoint(wrapping: source) {
      names = pack.tensors.lazy.map(\.name)
    }
    guard let embedding = names.first(where: { $0.hasSuffix(suffix) }) else { return "" }
    return String(embedding.dropLast(suffix.count))
  }

  /// Loads the decoder (the language model of a vision-language checkpoint) and the folder's
  /// tokenizer.json.
  ///
  /// A GGUF file runs as the checkpoint it was converted from (`GGUFDecoderSource`), with the
  /// config and tokenizer its metadata holds; an MLX-quantized folder runs dequantized.
  public static func load(_ checkpoint: Checkpoint) throws -> LoadedModel {
    let checkpoint = try engineView(of: checkpoint)
    if let view = checkpoint.source as? GGUFDecoderSource {
      let config = try ModelConfig(data: view.decoder.configData, location: view.location)
      return LoadedModel(
        model: try DecoderModel(source: view, config: config), tokenizer: try Tokenizer(gguf: view.file))
    }
    guard let configData = checkpoint.configData else {
      throw EvaluationError.missingConfig(location: checkpoint.location)
    }
    let config = try ModelConfig(data: configData, location: checkpoint.configPath ?? checkpoint.location)
    let source = checkpoint.source
    let model = try DecoderModel(source: source, config: config, prefix: languageModelPrefix(of: source))
    return LoadedModel(model: model, tokenizer: try tokenizer(of: checkpoint))
  }

  /// The checkpoint as the engine reads it: a GGUF file under Hugging Face names with the
  /// config of its metadata (`GGUFDecoderSource`), an MLX-quantized folder dequantized, others
  /// as they are. Tools comparing a GGUF with the checkpoint it came from use the same view.
  /// - Throws: `EngineError` for a GGUF architecture the engine does not run, `DequantizeError`.
  public static func engineView(of checkpoint: Checkpoint) throws -> Checkpoint {
    if checkpoint.source is GGUFDecoderSource { return checkpoint }
    if let gguf = ggufFile(of: checkpoint) {
      let view = try GGUFDecoderSource(file: gguf)
      return checkpoint.replacingSource(with: view, configData: view.decoder.configData, configPath: gguf.location)
    }
    return try checkpoint.dequantized()
  }

  /// The GGUF file a checkpoint reads, as opened or already wrapped.
  static func ggufFile(of checkpoint: Checkpoint) -> GGUFFile? {
    (checkpoint.source as? GGUFFile) ?? (checkpoint.source as? DequantizedGGUF)?.file
      ?? (checkpoint.source as? GGUFDecoderSource)?.file
  }

  static func tokenizer(of checkpoint: Checkpoint) throws -> Tokenizer {
    var exists = false
    if let folder = checkpoint.folder {
      let path = (folder as NSString).appendingPathComponent("tokenizer.json")
      do {
        exists = try SideFile.exists(path)
      } catch {
        throw SideFile.Failure(path: path, problem: error)
      }
    }
    guard let folder = checkpoint.folder, exists else {
      throw EvaluationError.missingTokenizer(location: checkpoint.location)
    }
    return try Tokenizer(folder: URL(fileURLWithPath: folder))
  }

  /// Tokenizes a text or JSONL file (documents joined by the end-of-text token) and measures
  /// perplexity in windows of `context` tokens.
  ///
  /// With `.secondHalf` scoring the windows are whole and disjoint and only targets with at least
  /// half a window of context are scored, each window starting with BOS when the tokenizer adds
  /// one: what `llama-perplexity` reports, so the two compare on the same numbers.
  public static func perplexity(
    of loaded: LoadedModel, textFile: String, field: String = "text", context: Int, stride: Int?,
    maxWindows: Int?, scoring: PerplexityScoring = .all, progress: ProgressStyle = .none, tool: String = "qinspect"
  ) throws -> Perplexity {
    try PositionLimit.check(
      option: "--context", value: context, model: loaded.model.configuration, location: loaded.model.location,
      use: .inference)
    let dataset = try TextDataset(contentsOf: URL(fileURLWithPath: textFile), field: field)
    let separator = loaded.tokenizer.eosTokenID.map { [$0] } ?? []
    let tokens = dataset.tokenize(with: loaded.tokenizer, separator: separator)
    guard tokens.count >= 2 else { throw EvaluationError.textTooShort(path: textFile, tokens: tokens.count) }
    let start = Date()
    let windowContext = min(context, tokens.count)
    let windowStride = stride.map { min($0, context) } ?? windowContext
    let reporter = ProgressReporter(
      tool: tool, stage: "perplexity",
      total: scoring == .secondHalf
        ? PerplexityWindows.secondHalfCount(tokens: tokens.count, context: context, maxWindows: maxWindows)
        : PerplexityWindows.count(tokens: tokens.count, context: windowContext, stride: windowStride, maxWindows: maxWindows),
      unit: "windows", style: progress)
    defer { reporter.finish() }
    let result =
      scoring == .secondHalf
      ? try PerplexityWindows.secondHalf(
        model: loaded.model, tokens: tokens, context: context, maxWindows: maxWindows,
        firstToken: loaded.tokenizer.addsBOSToken ? loaded.tokenizer.bosTokenID : nil
      ) { reporter.update($0) }
      : try loaded.model.perplexity(
        tokens: tokens, context: windowContext, stride: windowStride, maxWindows: maxWindows,
        firstToken: loaded.tokenizer.windowStartTokenID
      ) { reporter.update($0) }
    return Perplexity(
      text: textFile, perplexity: result.perplexity,
      meanNegativeLogLikelihood: result.meanNegativeLogLikelihood, scoredTokens: result.scoredTokens,
      windows: result.windows, context: scoring == .secondHalf ? context : windowContext,
      stride: scoring == .secondHalf ? context : stride ?? context, scoring: scoring,
      seconds: Date().timeIntervalSince(start))
  }

  /// Greedy generation from a prompt, stopping at the tokenizer's end-of-sequence token.
  ///
  /// With `imageFile` the checkpoint must have been loaded by `loadVisionLanguage`: the image
  /// goes where the prompt's image token is (written `<image>` in the prompt when the tokenizer
  /// has that token), or before the prompt when there is none or the config names none; a
  /// `<image>` placeholder is then removed from the text.
  public static func generate(
    with loaded: LoadedModel, prompt: String, maxTokens: Int, chat: Bool, imageFile: String? = nil
  ) throws -> Generation {
    var text = prompt
    if imageFile != nil, loaded.visionLanguage?.imageTokenIndex == nil {
      text = text.replacing("<image>\n", with: "").replacing("<image>", with: "")
    }
    let ids =
      chat
      ? try loaded.tokenizer.encodeChat(messages: [ChatMessage(role: "user", content: text)])
      : loaded.tokenizer.encode(text)
    try PositionLimit.check(
      option: "--max-tokens", value: maxTokens, extra: (ids.count, "prompt"), model: loaded.model.configuration,
      location: loaded.model.location, use: .generation)
    var eos: Set<Int> = []
    if let id = loaded.tokenizer.eosTokenID { eos.insert(id) }
    if let id = loaded.tokenizer.id(of: "<|im_end|>") { eos.insert(id) }
    let start = Date()
    var promptSeconds: Double? = nil
    let output: [Int]
    if let imageFile {
      guard let visionLanguage = loaded.visionLanguage else {
        throw EvaluationError.notVisionLanguage(location: loaded.model.location)
      }
      let pixels = visionLanguage.preprocessor(try Image.load(path: imageFile))
      output = try visionLanguage.generate(tokens: ids, pixels: pixels, maxTokens: maxTokens, eos: eos)
    } else {
      output = try loaded.model.generate(prompt: ids, maxTokens: maxTokens, eos: eos) {
        promptSeconds = Date().timeIntervalSince(start)
      }
    }
    let completion = loaded.tokenizer.decode(output, skipSpecialTokens: true)
    return Generation(
      prompt: prompt, image: imageFile, completion: completion, tokens: output.count,
      seconds: Date().timeIntervalSince(start), promptTokens: imageFile == nil ? ids.count : nil,
      promptSeconds: promptSeconds)
  }
}

/// Why a checkpoint cannot be evaluated on text.
public enum EvaluationError: Error, CustomStringConvertible, Equatable {
  case missingConfig(location: String)
  case missingTokenizer(location: String)
  case textTooShort(path: String, tokens: Int)
  case notVisionLanguage(location: String)
  case noVisionTower(location: String, modelType: String?)
  case noImages(path: String)
  case incomparableImageFeatures(file: String, old: [Int], new: [Int])

  public var description: String {
    switch self {
    case .missingConfig(let location):
      "\(location): no config.json beside the weights; the model's shape comes from it"
    case .missingTokenizer(let location):
      "\(location): no tokenizer.json in the model folder; text cannot be tokenized"
    case .textTooShort(let path, let tokens):
      "\(path): text has \(tokens) tokens; perplexity needs at least 2"
    case .notVisionLanguage(let location):
      "\(location): not a vision-language model (no 'vision_config'); '--image' needs one"
    case .noVisionTower(let location, let modelType):
      "\(location): no vision tower (no 'vision_config', and model_type '\(modelType ?? "none")' is not dinov2, clip_vision_model or siglip_vision_model); '--images' needs one"
    case .noImages(let path):
      "\(path): no PNG or JPEG images there"
    case .incomparableImageFeatures(let file, let old, let new):
      "\(file): the models' image features have shapes \(old) and \(new); nothing to compare"
    }
  }
}
