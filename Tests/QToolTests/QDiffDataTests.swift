import Foundation
import QCompute
import QEngine
import QFormats
import QToolSupport
import Testing

/// `qdiff --data` on the tiny-chat fixture: a model against itself, against its 8-bit pack, and
/// against itself under a different tokenizer; KL and agreement checked against a computation
/// from `DecoderModel.logits` written here, and perplexity against the numpy reference.
@Suite struct QDiffDataTests {
  let model = fixturesDirectory.appendingPathComponent("tiny-chat").path
  let sample = fixturesDirectory.appendingPathComponent("tiny-chat.sample.txt").path

  struct ReferenceNumbers: Decodable {
    var context: Int
    var windows: Int
    var scored_tokens: Int
    var perplexity: Double
  }

  struct Output: Decodable {
    var same: Bool
    var data: DataComparisonResult
  }

  func run(_ old: String, _ new: String, _ extra: [String] = []) throws -> (status: Int32, output: Output?, stderr: String) {
    let run = try runTool(
      "qdiff", [old, new, "--data", sample, "--context", "32", "--format", "json"] + extra)
    let output = try? JSONDecoder().decode(Output.self, from: Data(run.stdout.utf8))
    return (run.status, output, run.stderr)
  }

  func temporaryDirectory() throws -> URL {
    let directory = FileManager.default.temporaryDirectory
      .appendingPathComponent("qdiff-data-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    return directory
  }

  func makePack(in work: URL) throws -> String {
    let pack = work.appendingPathComponent("pack").path
    let convert = try runTool("qconvert", [model, "-o", pack, "--bits", "8", "--group-size", "32", "--quiet"])
    try #require(convert.status == 0, "\(convert.stderr)")
    return pack
  }

  @Test func aModelAgainstItselfIsTheSame() throws {
    let result = try run(model, model)
    #expect(result.status == 0, "\(result.stderr)")
    let data = try #require(result.output?.data)
    #expect(data.tokenization == "shared")
    #expect(data.meanKL == 0)
    #expect(data.maxKL == 0)
    #expect(data.top1Agreement == 1)
    #expect(data.same)
    #expect(data.old.perplexity == data.new.perplexity)
    #expect(data.layers.count == 2)
    for layer in data.layers {
      #expect(layer.old == layer.new)
      #expect(abs((layer.cosine ?? 0) - 1) < 1e-12)
    }
    let similarity = try #require(data.layerSimilarity)
    #expect(similarity.source == "activations")
    #expect(similarity.newToOld == [0, 1])
  }

  @Test func perplexityMatchesTheNumpyReference() throws {
    let reference = try JSONDecoder().decode(
      ReferenceNumbers.self,
      from: Data(contentsOf: fixturesDirectory.appendingPathComponent("tiny-chat.expected.json")))
    let run = try runTool(
      "qdiff",
      [
        model, model, "--data", sample, "--context", "\(reference.context)", "--windows",
        "\(reference.windows)", "--format", "json",
      ])
    let data = try JSONDecoder().decode(Output.self, from: Data(run.stdout.utf8)).data
    #expect(data.old.scoredTokens == reference.scored_tokens)
    #expect(abs(data.old.perplexity - reference.perplexity) <= 1e-4 * reference.perplexity)
  }

  @Test func aPackDiffersSlightlyAndMatchesADirectComputation() throws {
    let work = try temporaryDirectory()
    defer { try? FileManager.default.removeItem(at: work) }
    let pack = try makePack(in: work)
    let result = try run(model, pack)
    #expect(result.status == 1, "\(result.stderr)")
    let data = try #require(result.output?.data)
    #expect(!data.same)
    let meanKL = try #require(data.meanKL)
    let agreement = try #require(data.top1Agreement)
    #expect(meanKL > 0 && meanKL < 0.05)
    #expect(agreement > 0.9 && agreement <= 1)
    for layer in data.layers { #expect((layer.cosine ?? 0) > 0.99) }

    // The same numbers straight from the engine's logits, on windows cut here.
    let reference = try directComparison(old: model, new: pack, context: 32)
    #expect(data.comparedPositions == reference.positions)
    #expect(abs(meanKL - reference.meanKL) <= 1e-9 * max(reference.meanKL, 1e-300))
    #expect(agreement == reference.agreement)
  }

  /// An MLX-quantized folder runs dequantized, once: the comparison opens it for the tensor
  /// table and again for the models.
  @Test(arguments: [3, 4]) func anMLXExportComparesOnData(bits: Int) throws {
    let work = try temporaryDirectory()
    defer { try? FileManager.default.removeItem(at: work) }
    let folder = work.appendingPathComponent("mlx-\(bits)").path
    let convert = try runTool("qconvert", [model, "-o", folder, "--layout", "mlx", "--bits", "\(bits)", "--quiet"])
    try #require(convert.status == 0, "\(convert.stderr)")
    let result = try run(model, folder)
    #expect(result.status == 1, "\(result.stderr)")
    let data = try #require(result.output?.data)
    let meanKL = try #require(data.meanKL)
    let reference = try directComparison(old: model, new: folder, context: 32)
    #expect(data.comparedPositions == reference.positions)
    #expect(abs(meanKL - reference.meanKL) <= 1e-9 * max(reference.meanKL, 1e-300))
    #expect(data.top1Agreement == reference.agreement)
  }

  /// Mean KL(old || new) and top-1 agreement over disjoint windows of `context` ids, every
  /// position but each window's last, from `DecoderModel.logits`.
  func directComparison(old: String, new: String, context: Int) throws -> (meanKL: Double, agreement: Double, positions: Int) {
    func load(_ path: String) throws -> DecoderModel {
      let checkpoint = try Checkpoint.open(path).dequantized()
      let config = try ModelConfig(data: try #require(checkpoint.configData), location: path)
      return try DecoderModel(source: checkpoint.source, config: config)
    }
    let a = try load(old)
    let b = try load(new)
    let tokenizer = try BPETokenizer(folder: URL(fileURLWithPath: model))
    let text = try String(contentsOfFile: sample, encoding: .utf8)
    let ids = tokenizer.encode(text, addSpecialTokens: false)
    var total: Double = 0
    var agreeing = 0
    var positions = 0
    var start = 0
    while start + 1 < ids.count {
      let input = Array(ids[start..<min(start + context, ids.count)].dropLast())
      let x = try a.logits(tokens: input)
      let y = try b.logits(tokens: input)
      for row in 0..<input.count {
        let p = x.row(row).map(Double.init)
        let q = y.row(row).map(Double.init)
        // log p_i = x_i - log sum exp x, through the largest value for range.
        let lp = logProbabilities(p)
        let lq = logProbabilities(q)
        total += zip(lp, lq).reduce(0) { $0 + exp($1.0) * ($1.0 - $1.1) }
        let bestP = p.indices.max { p[$0] < p[$1] || (p[$0] == p[$1] && $0 > $1) } ?? -1
        let bestQ = q.indices.max { q[$0] < q[$1] || (q[$0] == q[$1] && $0 > $1) } ?? -1
        if bestP == bestQ { agreeing += 1 }
        positions += 1
      }
      start += context
    }
    return (total / Double(positions), Double(agreeing) / Double(positions), positions)
  }

  func logProbabilities(_ x: [Double]) -> [Double] {
    let largest = x.max() ?? 0
    let logSum = log(x.reduce(0) { $0 + exp($1 - largest) }) + largest
    return x.map { $0 - logSum }
  }

  @Test func differentTokenizersCompareThroughTextPieces() throws {
    let work = try temporaryDirectory()
    defer { try? FileManager.default.removeItem(at: work) }
    // The same model with two vocabulary entries swapped: another tokenizer for the same text.
    let other = work.appendingPathComponent("swapped")
    try FileManager.default.copyItem(at: URL(fileURLWithPath: model), to: other)
    let file = other.appendingPathComponent("tokenizer.json")
    var root = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: file)) as? [String: Any])
    var bpe = try #require(root["model"] as? [String: Any])
    var vocabulary = try #require(bpe["vocab"] as? [String: Int])
    let (first, second) = (try #require(vocabulary["Ġthe"]), try #require(vocabulary["Ġquick"]))
    vocabulary["Ġthe"] = second
    vocabulary["Ġquick"] = first
    bpe["vocab"] = vocabulary
    root["model"] = bpe
    try JSONSerialization.data(withJSONObject: root).write(to: file)

    let result = try run(model, other.path)
    #expect(result.status == 1, "\(result.stderr)")
    let data = try #require(result.output?.data)
    #expect(data.tokenization == "separate")
    #expect(data.meanKL == nil && data.top1Agreement == nil && data.tokenMetricsNote != nil)
    #expect(data.layers.isEmpty && data.layersNote != nil)
    #expect(data.old.scoredTokens == data.new.scoredTokens)
    #expect(data.old.scoredBytes > data.old.scoredTokens)
    let bitsPerByte = try #require(data.old.bitsPerByte)
    #expect(abs(bitsPerByte - data.old.meanNLL * Double(data.old.scoredTokens) / log(2) / Double(data.old.scoredBytes)) < 1e-12)
    // The old model's ids for the swapped tokens mean other tokens to the new model.
    #expect(data.old.perplexity != data.new.perplexity)
    let similarity = try #require(data.layerSimilarity)
    #expect(similarity.newToOld == [0, 1])
    #expect(data.activationExamples >= 4)
  }

  @Test func textPiecesKeepEveryCharacter() {
    let documents = ["The quick brown fox jumps over the lazy dog", "", "aaaaaaaaaaaaaaaaaaaaaaa", "é ü"]
    for target in [1, 3, 8] {
      let pieces = TextPieces.cut(documents, target: target, limit: 2 * target)
      #expect(pieces.joined() == documents.joined())
      #expect(pieces.allSatisfy { !$0.isEmpty && ($0.utf8.count <= 2 * target || $0.count == 1) })
    }
  }

  @Test func tableAndTSVCarryTheDataSection() throws {
    let table = try runTool("qdiff", [model, model, "--data", sample, "--context", "32"])
    #expect(table.status == 0, "\(table.stderr)")
    #expect(table.stdout.contains("top-1 agreement 100.00%"))
    let tsv = try runTool("qdiff", [model, model, "--data", sample, "--context", "32", "--format", "tsv"])
    #expect(tsv.stdout.contains("\nmetric\tvalue\n"))
    #expect(tsv.stdout.contains("\nmean_kl\t0.0\n"))
    let jsonl = try runTool("qdiff", [model, model, "--data", sample, "--context", "32", "--format", "jsonl"])
    let last = try #require(jsonl.stdout.split(separator: "\n").last)
    #expect(last.hasPrefix("{\"data\":"))
  }

  @Test func plotAndMappingComeFromActivations() throws {
    let work = try temporaryDirectory()
    defer { try? FileManager.default.removeItem(at: work) }
    let plot = work.appendingPathComponent("data.svg").path
    let mapping = work.appendingPathComponent("mapping.json").path
    let result = try run(model, model, ["--plot", plot, "--save-mapping", mapping])
    #expect(result.status == 0, "\(result.stderr)")
    let file = try LayerMappingFile.read(from: mapping)
    #expect(file.layerSimilarity.source == "activations")
    let svg = try String(contentsOfFile: plot, encoding: .utf8)
    #expect(svg.contains("Linear CKA from activations"))
    #expect(svg.contains("Hidden-state cosine per layer"))
  }
}
