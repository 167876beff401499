import Foundation
import QCompute
import QEngine
import QFormats

/// Two checkpoints' language models run on the same text (`qdiff --data`): perplexity of both,
/// and, when they read the same ids, the KL divergence and top-1 agreement of their next-token
/// distributions and the cosine of their hidden states; layer similarity from activations in
/// every case.
public enum DataComparison {
  /// Runs both models on the windows of a text or JSONL file.
  ///
  /// With tokenizers of the same vocabulary that give the same ids for the text, both models
  /// read the same windows of `context` ids (documents joined by the end-of-text token, as
  /// `qinspect --perplexity` does), every position is compared, and the activations of every
  /// token are the examples of the CKA. Otherwise the text is cut into pieces of whole words,
  /// each model reads its own ids of the same consecutive pieces (windows end at a piece
  /// boundary and hold at most `context` ids on either side), and each piece's mean hidden
  /// state per layer is one example; positions do not correspond, so there is no KL or
  /// agreement, and perplexities compare through bits per byte.
  /// - Parameters:
  ///   - windows: At most this many windows; all of them when nil.
  ///   - field: The text field of a JSONL file.
  /// - Throws: `EvaluationError`, the engine's and the data set's errors, `SimilarityError`.
  public static func compare(
    old: Checkpoint, new: Checkpoint, text: String, context: Int = 512, windows: Int? = nil,
    field: String = "text", contextOption: String = "--context"
  ) throws -> DataComparisonResult {
    let start = Date()
    let oldLoaded = try ModelEvaluation.load(old)
    let newLoaded = try ModelEvaluation.load(new)
    for loaded in [oldLoaded, newLoaded] {
      try PositionLimit.check(
        option: contextOption, value: context, model: loaded.model.configuration, location: loaded.model.location,
        use: .inference)
    }
    let dataset = try TextDataset(contentsOf: URL(fileURLWithPath: text), field: field)
    let sides = (Runner(loaded: oldLoaded), Runner(loaded: newLoaded))
    let oldIDs = dataset.tokenize(with: oldLoaded.tokenizer, separator: sides.0.separator)
    let newIDs = dataset.tokenize(with: newLoaded.tokenizer, separator: sides.1.separator)
    // A GGUF carries its vocabulary in metadata, not in a tokenizer.json beside it.
    let sameVocabulary =
      ModelEvaluation.ggufFile(of: old) != nil || ModelEvaluation.ggufFile(of: new) != nil
      ? oldLoaded.tokenizer.hasSameVocabulary(as: newLoaded.tokenizer) : try sameVocabulary(old, new)
    let shared =
      sameVocabulary && oldIDs == newIDs
      && oldLoaded.model.configuration.vocabularySize == newLoaded.model.configuration.vocabularySize
    var run =
      shared
      ? try compareShared(sides, ids: oldIDs, text: text, context: context, maxWindows: windows)
      : try compareSeparate(sides, dataset: dataset, text: text, context: context, maxWindows: windows)
    try finish(&run, old: old, new: new, shared: shared)
    run.result.seconds = Date().timeIntervalSince(start)
    return run.result
  }

  /// Whether both folders' `tokenizer.json` files hold the same vocabulary.
  static func sameVocabulary(_ old: Checkpoint, _ new: Checkpoint) throws -> Bool {
    guard let a = old.folder, let b = new.folder else { return false }
    let file = "tokenizer.json"
    return try TokenEmbeddings.readVocabulary(tokenizerJSON: (a as NSString).appendingPathComponent(file))
      == TokenEmbeddings.readVocabulary(tokenizerJSON: (b as NSString).appendingPathComponent(file))
  }

  /// One model with its running sums.
  struct Runner {
    let loaded: ModelEvaluation.LoadedModel
    var nll: Double = 0
    var scored = 0
    var scoredBytes = 0
    var textTokens = 0
    /// Per layer (not the embeddings), the example rows in order.
    var activations: [[Float]]

    init(loaded: ModelEvaluation.LoadedModel) {
      self.loaded = loaded
      activations = Array(repeating: [], count: loaded.model.configuration.layerCount)
    }

    var model: DecoderModel { loaded.model }
    var width: Int { model.configuration.hiddenSize }
    var separator: [Int] { loaded.tokenizer.eosTokenID.map { [$0] } ?? [] }
    var examples: Int { width > 0 ? (activations.first?.count ?? 0) / width : 0 }

    func side() -> DataComparisonResult.Side {
      let mean = scored > 0 ? nll / Double(scored) : .nan
      return DataComparisonResult.Side(
        perplexity: exp(mean), meanNLL: mean,
        bitsPerByte: scoredBytes > 0 ? nll / log(2) / Double(scoredBytes) : nil,
        scoredTokens: scored, scoredBytes: scoredBytes, textTokens: textTokens,
        layers: model.configuration.layerCount, hiddenSize: width)
    }

    func activationMatrices() throws -> [Matrix<Float>] {
      try activations.map { try Matrix(rows: examples, columns: width, elements: $0) }
    }
  }

  /// The sums of a run before the layer numbers are filled in.
  struct Run {
    var result: DataComparisonResult
    var sides: (Runner, Runner)
    var batchSize: Int?
  }

  static func compareShared(
    _ sides: (Runner, Runner), ids: [Int], text: String, context: Int, maxWindows: Int?
  ) throws -> Run {
    var (a, b) = sides
    guard ids.count >= 2 else { throw EvaluationError.textTooShort(path: text, tokens: ids.count) }
    let windowLength = min(context, ids.count)
    a.textTokens = ids.count
    b.textTokens = ids.count
    let vocabulary = a.model.configuration.vocabularySize
    var kl: Double = 0
    var maxKL: Double = 0
    var agreeing = 0
    var compared = 0
    var windowCount = 0
    var logP = [Double](repeating: 0, count: vocabulary)
    var logQ = [Double](repeating: 0, count: vocabulary)
    for window in try TokenWindows(ids: ids, context: windowLength) {
      if let maxWindows, windowCount >= maxWindows { break }
      windowCount += 1
      let input = Array(window.ids.dropLast())
      let targets = Array(window.ids.dropFirst())
      // One forward per model gives both the logits and every layer's hidden states.
      let oldLogits = try a.model.logits(tokens: input) { index, values in
        if index > 0 { a.activations[index - 1] += values }
      }
      let newLogits = try b.model.logits(tokens: input) { index, values in
        if index > 0 { b.activations[index - 1] += values }
      }
      oldLogits.withUnsafeBufferPointer { x in
        newLogits.withUnsafeBufferPointer { y in
          logP.withUnsafeMutableBufferPointer { p in
            logQ.withUnsafeMutableBufferPointer { q in
              for position in window.firstScoredPosition..<input.count {
                let range = (position * vocabulary)..<((position + 1) * vocabulary)
                let rowP = UnsafeBufferPointer(rebasing: x[range])
                let rowQ = UnsafeBufferPointer(rebasing: y[range])
                logSoftmax(rowP, into: p)
                logSoftmax(rowQ, into: q)
                let target = targets[position]
                a.nll -= p[target]
                b.nll -= q[target]
                let divergence = klDivergence(UnsafeBufferPointer(p), UnsafeBufferPointer(q))
                kl += divergence
                maxKL = max(maxKL, divergence)
                if argmax(rowP) == argmax(rowQ) { agreeing += 1 }
                compared += 1
              }
            }
          }
        }
      }
      let bytes = a.loaded.tokenizer.decode(Array(targets.suffix(window.scoredCount))).utf8.count
      for index in [0, 1] {
        var side = index == 0 ? a : b
        side.scored += window.scoredCount
        side.scoredBytes += bytes
        if index == 0 { a = side } else { b = side }
      }
    }
    guard compared > 0 else { throw EvaluationError.textTooShort(path: text, tokens: ids.count) }
    let result = DataComparisonResult(
      text: text, tokenization: "shared", context: windowLength, windows: windowCount, old: a.side(),
      new: b.side(), comparedPositions: compared, meanKL: kl / Double(compared), maxKL: maxKL,
      top1Agreement: Double(agreeing) / Double(compared), tokenMetricsNote: nil, layers: [],
      layersNote: nil, layerSimilarity: nil, activationExamples: a.examples,
      same: kl == 0 && agreeing == compared, seconds: 0)
    return Run(result: result, sides: (a, b), batchSize: windowLength - 1)
  }

  static func compareSeparate(
    _ sides: (Runner, Runner), dataset: TextDataset, text: String, context: Int, maxWindows: Int?
  ) throws -> Run {
    var (a, b) = sides
    let target = max(1, min(64, context / 4))
    let pieces = TextPieces.cut(dataset.documents, target: target, limit: max(1, min(2 * target, context)))
    let oldPieces = pieces.map { a.loaded.tokenizer.encode($0, addSpecialTokens: false) }
    let newPieces = pieces.map { b.loaded.tokenizer.encode($0, addSpecialTokens: false) }
    a.textTokens = oldPieces.reduce(0) { $0 + $1.count }
    b.textTokens = newPieces.reduce(0) { $0 + $1.count }
    // Consecutive pieces, as many as fit in `context` ids on both sides.
    var windows: [Range<Int>] = []
    var first = 0
    while first < pieces.count {
      if let maxWindows, windows.count >= maxWindows { break }
      var end = first
      var oldCount = 0
      var newCount = 0
      while end < pieces.count, oldCount + oldPieces[end].count <= context,
        newCount + newPieces[end].count <= context
      {
        oldCount += oldPieces[end].count
        newCount += newPieces[end].count
        end += 1
      }
      // A piece longer than the context on either side is skipped.
      if end == first {
        first += 1
        continue
      }
      windows.append(first..<end)
      first = end
    }
    for window in windows {
      try score(&a, pieces: oldPieces[window])
      try score(&b, pieces: newPieces[window])
    }
    guard a.scored > 0, b.scored > 0 else {
      throw EvaluationError.textTooShort(path: text, tokens: min(a.textTokens, b.textTokens))
    }
    let result = DataComparisonResult(
      text: text, tokenization: "separate", context: context, windows: windows.count, old: a.side(),
      new: b.side(), comparedPositions: nil, meanKL: nil, maxKL: nil, top1Agreement: nil,
      tokenMetricsNote:
        "the tokenizers differ, so the models read different ids and predict over different vocabularies; KL and top-1 agreement need the same ids",
      layers: [], layersNote: nil, layerSimilarity: nil, activationExamples: a.examples, same: false,
      seconds: 0)
    return Run(result: result, sides: (a, b), batchSize: nil)
  }

  /// One window of whole pieces: its perplexity sums and each piece's mean hidden state.
  static func score(_ side: inout Runner, pieces: ArraySlice<[Int]>) throws {
    let ids = pieces.flatMap { $0 }
    guard !ids.isEmpty else { return }
    let width = side.width
    // One forward over every id: the hidden states of all of them, the logits of all but the last.
    var states: [[Float]] = Array(repeating: [], count: side.activations.count)
    let logits = try side.model.logits(tokens: ids, rows: ids.count - 1) { index, values in
      if index > 0 { states[index - 1] = Array(values) }
    }
    if ids.count >= 2 {
      let input = Array(ids.dropLast())
      let vocabulary = side.model.configuration.vocabularySize
      var logP = [Double](repeating: 0, count: vocabulary)
      logits.withUnsafeBufferPointer { x in
        logP.withUnsafeMutableBufferPointer { p in
          for position in input.indices {
            logSoftmax(UnsafeBufferPointer(rebasing: x[(position * vocabulary)..<((position + 1) * vocabulary)]), into: p)
            side.nll -= p[ids[position + 1]]
          }
        }
      }
      side.scored += input.count
      side.scoredBytes += side.loaded.tokenizer.decode(Array(ids.dropFirst())).utf8.count
    }
    for layer in side.activations.indices {
      let values = states[layer]
      var row = 0
      for piece in pieces {
        var mean = [Double](repeating: 0, count: width)
        for token in row..<(row + piece.count) {
          for column in 0..<width { mean[column] += Double(values[token * width + column]) }
        }
        let scale = 1 / Double(max(piece.count, 1))
        side.activations[layer] += mean.map { Float($0 * scale) }
        row += piece.count
      }
    }
  }

  /// The activation CKA, its layer mapping and the hidden-state cosines.
  static func finish(_ run: inout Run, old: Checkpoint, new: Checkpoint, shared: Bool) throws {
    let (a, b) = run.sides
    let oldActivations = try a.activationMatrices()
    let newActivations = try b.activationMatrices()
    if a.examples >= 4 {
      run.result.layerSimilarity = try LayerSimilarity.fromActivations(
        old: DiffInput(old), new: DiffInput(new), oldActivations: oldActivations,
        newActivations: newActivations, batchSize: run.batchSize)
    }
    guard shared else {
      run.result.layersNote = "the models read different ids, so hidden states of single tokens do not correspond"
      return
    }
    guard a.width == b.width else {
      run.result.layersNote = "the hidden sizes differ (\(a.width) and \(b.width))"
      return
    }
    let pairs: [(old: Int, new: Int)]
    if oldActivations.count == newActivations.count {
      pairs = newActivations.indices.map { ($0, $0) }
    } else if let mapping = run.result.layerSimilarity?.mapping {
      pairs = mapping.compactMap { pair in pair.old.map { ($0, pair.new) } }
    } else {
      run.result.layersNote = "the depths differ and there are too few tokens for a layer mapping"
      return
    }
    run.result.layers = pairs.map { pair in
      DataComparisonResult.LayerCosine(
        old: pair.old, new: pair.new,
        cosine: meanRowCosine(oldActivations[pair.old], newActivations[pair.new]))
    }
  }
}

/// Cutting text into short pieces of whole words, the unit both models of different tokenizers
/// read alike.
public enum TextPieces {
  /// Each document cut before a whitespace character once a piece holds `target` UTF-8 bytes,
  /// and anywhere (at a character boundary) once it would exceed `limit`. Pieces keep every
  /// character, so joined they give back the documents.
  public static func cut(_ documents: [String], target: Int, limit: Int) -> [String] {
    var pieces: [String] = []
    for document in documents {
      var current = ""
      var bytes = 0
      for character in document {
        let size = character.utf8.count
        if bytes > 0, (bytes >= target && character.isWhitespace) || bytes + size > limit {
          pieces.append(current)
          current = ""
          bytes = 0
        }
        current.append(character)
        bytes += size
      }
      if !current.isEmpty { pieces.append(current) }
    }
    return pieces
  }
}
