import Foundation
import QCompute
import QEngine
import QFormats
import Testing

@testable import QToolSupport

@Suite(.serialized) struct SpeedQStage3Tests {
  struct TinyChat {
    let source: SafetensorsFile
    let config: ModelConfig
    let teacher: DecoderModel
    let windows: [[Int]]

    init(context: Int = 32) throws {
      let folder = fixturesDirectory.appending(path: "tiny-chat")
      source = try SafetensorsFile(path: folder.appending(path: "model.safetensors").path)
      config = try ModelConfig(data: try Data(contentsOf: folder.appending(path: "config.json")), location: folder.path)
      teacher = try DecoderModel(source: source, config: config)
      let tokenizer = try BPETokenizer(folder: folder)
      let text = try String(contentsOf: fixturesDirectory.appending(path: "tiny-chat.sample.txt"), encoding: .utf8)
      let ids = tokenizer.encode(text)
      windows = try TokenWindows(ids: ids, context: context).map { Array($0.ids) }.filter { $0.count == context }
    }

    /// Mean per-token KL(teacher ‖ model) over the windows, the model read back from a
    /// dequantized checkpoint by `DecoderModel`.
    func klToTeacher(
      _ quantized: [String: QuantizedMatrix], trained: [String: [Float]] = [:], directory: URL
    ) throws -> Double {
      let path = directory.appending(path: "model-\(UUID().uuidString).safetensors").path
      try SpeedQDequantized.write(quantized, replacing: trained, over: source, to: path)
      let model = try DecoderModel(source: try SafetensorsFile(path: path), config: config)
      var total = 0.0
      for window in windows {
        let kl = try TrainingLoss.forwardKL(
          student: try model.logits(tokens: window).elements, teacher: try teacher.logits(tokens: window).elements,
          vocabularySize: model.configuration.vocabularySize)
        total += kl.value
      }
      return total / Double(windows.count)
    }
  }

  static func temporaryDirectory() throws -> URL {
    let url = FileManager.default.temporaryDirectory.appending(path: "speedq-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    return url
  }

  @Test func qatLowersTheKLOfTheClipInitialisedModel() throws {
    let tiny = try TinyChat()
    #expect(tiny.windows.count >= 3)
    let directory = try Self.temporaryDirectory()
    defer { try? FileManager.default.removeItem(at: directory) }
    let configuration = SpeedQConfiguration(grid: .w2g16g16, learningRate: 2e-3, steps: 20)
    let initial = try SpeedQStage3(
      teacher: tiny.teacher, source: tiny.source, config: tiny.config,
      configuration: SpeedQConfiguration(grid: .w2g16g16, learningRate: 2e-3, steps: 0), windows: tiny.windows)
    let clipInit = try initial.run()
    var losses: [Double] = []
    let stage = try SpeedQStage3(
      teacher: tiny.teacher, source: tiny.source, config: tiny.config, configuration: configuration,
      windows: tiny.windows)
    let trained = try stage.run { losses.append($0.loss) }
    #expect(losses.count == 20)
    #expect(stage.completedSteps == 20)
    let gamma = try #require(stage.gamma)
    #expect(gamma > 0 && gamma < 1)
    // Every decoder linear plus the tied embedding, on their grids.
    #expect(trained.count == 7 * 2 + 1)
    #expect(trained["model.embed_tokens.weight"]?.method == .symmetricEmbedding)
    #expect(trained["model.layers.1.mlp.down_proj.weight"]?.method == .bilevel)
    let before = try tiny.klToTeacher(clipInit, directory: directory)
    let after = try tiny.klToTeacher(trained, trained: stage.fullPrecisionWeights(), directory: directory)
    #expect(after < before * 0.9, "KL to the teacher \(before) at step 0, \(after) after 20 steps; losses \(losses)")
  }

  @Test func resumedRunEqualsAnUninterruptedOne() throws {
    let tiny = try TinyChat()
    let directory = try Self.temporaryDirectory()
    defer { try? FileManager.default.removeItem(at: directory) }
    let base = SpeedQConfiguration(grid: .w2g16g16, learningRate: 2e-3, steps: 6)
    let wholeStage = try SpeedQStage3(
      teacher: tiny.teacher, source: tiny.source, config: tiny.config, configuration: base, windows: tiny.windows)
    let whole = try wholeStage.run()
    var split = base
    split.checkpointPath = directory.appending(path: "state.safetensors").path
    split.checkpointInterval = 2
    split.stopAfterStep = 3
    let first = try SpeedQStage3(
      teacher: tiny.teacher, source: tiny.source, config: tiny.config, configuration: split, windows: tiny.windows)
    _ = try first.run()
    #expect(first.completedSteps == 3)
    split.stopAfterStep = nil
    let second = try SpeedQStage3(
      teacher: tiny.teacher, source: tiny.source, config: tiny.config, configuration: split, windows: tiny.windows)
    var steps: [Int] = []
    let resumed = try second.run { steps.append($0.step) }
    #expect(steps == [4, 5, 6])
    #expect(second.gamma == first.gamma)
    for (name, matrix) in whole {
      let other = try #require(resumed[name])
      let difference = zip(matrix.dequantize(), other.dequantize()).map { abs($0 - $1) }.max() ?? 0
      #expect(difference < 1e-6, "\(name) differs by \(difference)")
    }
    let wholeNorms = wholeStage.fullPrecisionWeights()
    #expect(!wholeNorms.isEmpty)
    for (name, values) in wholeNorms {
      let other = try #require(second.fullPrecisionWeights()[name])
      let difference = zip(values, other).map { abs($0 - $1) }.max() ?? 0
      #expect(difference < 1e-6, "\(name) differs by \(difference)")
    }
    // A checkpoint of other settings is refused.
    var other = split
    other.learningRate = 1e-3
    #expect(throws: SpeedQError.self) {
      try SpeedQStage3(
        teacher: tiny.teacher, source: tiny.source, config: tiny.config, configuration: other, windows: tiny.windows
      ).run()
    }
  }

  /// The norm weights train beside the linears, in full precision and without weight decay, as
  /// the reference trains them; `trainsNormsAndBiases: false` keeps them as stored. The two are
  /// different runs to a checkpoint.
  @Test func normsTrainUnlessKept() throws {
    let tiny = try TinyChat()
    let norms = [
      "model.layers.0.input_layernorm.weight", "model.layers.0.post_attention_layernorm.weight",
      "model.layers.1.input_layernorm.weight", "model.layers.1.post_attention_layernorm.weight", "model.norm.weight",
    ]
    var configuration = SpeedQConfiguration(grid: .w2g16g16, learningRate: 2e-3, steps: 3)
    let stage = try SpeedQStage3(
      teacher: tiny.teacher, source: tiny.source, config: tiny.config, configuration: configuration,
      windows: tiny.windows)
    #expect(stage.fullPrecisionNames == norms)
    #expect(stage.optimizer.decayExempt == Set(norms))
    _ = try stage.run()
    let trained = stage.fullPrecisionWeights()
    #expect(trained.keys.sorted() == norms)
    for name in norms {
      let stored = try tiny.source.floats(of: name)
      #expect(trained[name] != stored, "\(name) did not train")
      #expect(trained[name] == stage.student.parameters[name])
    }
    configuration.trainsNormsAndBiases = false
    let frozen = try SpeedQStage3(
      teacher: tiny.teacher, source: tiny.source, config: tiny.config, configuration: configuration,
      windows: tiny.windows)
    _ = try frozen.run()
    #expect(frozen.fullPrecisionWeights().isEmpty)
    for name in norms {
      #expect(frozen.student.parameters[name] == (try tiny.source.floats(of: name)))
      #expect(!frozen.student.trainable.contains(name))
    }
    #expect(configuration.fingerprint + " norms=trained" == SpeedQConfiguration(
      grid: .w2g16g16, learningRate: 2e-3, steps: 3).fingerprint)
  }

  /// The student's embedding is frozen at exactly what the pack will hold on the chosen grid.
  @Test func embeddingGridIsTheOneThePackHolds() throws {
    let tiny = try TinyChat()
    let name = "model.embed_tokens.weight"
    let info = try #require(tiny.source.tensors.first { $0.name == name })
    let source = try tiny.source.floats(of: name)
    let spec = PackSpec(bits: 8, groupSize: .elements(32), grid: .symmetric, method: .rtn)
    let packed = try source.withUnsafeBufferPointer {
      try PackEncoder.quantize($0, info: info, spec: spec, location: "test")
    }
    var configuration = SpeedQConfiguration(grid: .w2g16g16, steps: 0)
    configuration.embedding = .packed(spec)
    let eight = try SpeedQStage3(
      teacher: tiny.teacher, source: tiny.source, config: tiny.config, configuration: configuration,
      windows: tiny.windows)
    #expect(eight.student.parameters[name] == packed.dequantize())
    #expect(try eight.run()[name] == packed)
    configuration.embedding = .kept
    let kept = try SpeedQStage3(
      teacher: tiny.teacher, source: tiny.source, config: tiny.config, configuration: configuration,
      windows: tiny.windows)
    #expect(kept.student.parameters[name] == source)
    #expect(try kept.run()[name] == nil)
    configuration.embedding = .speedQ
    let policy = try SpeedQStage3(
      teacher: tiny.teacher, source: tiny.source, config: tiny.config, configuration: configuration,
      windows: tiny.windows)
    #expect(try policy.run()[name]?.method == .symmetricEmbedding)
  }

  /// An embedding asked to train on a bilevel grid is looked up and multiplied on that grid (the
  /// student's forward is the model its codes make), trains, and is written from its latent values.
  @Test func embeddingTrainsOnItsBilevelGrid() throws {
    let tiny = try TinyChat()
    let directory = try Self.temporaryDirectory()
    defer { try? FileManager.default.removeItem(at: directory) }
    let embedding = "model.embed_tokens.weight"
    var configuration = SpeedQConfiguration(grid: .w2g16g16, learningRate: 2e-3, steps: 0)
    configuration.embedding = .trained(.w4g32g128)
    let untouched = try SpeedQStage3(
      teacher: tiny.teacher, source: tiny.source, config: tiny.config, configuration: configuration,
      windows: tiny.windows)
    let initial = try untouched.run()
    #expect(initial[embedding]?.bits == 4 && initial[embedding]?.groupLength == 32)
    #expect(untouched.student.trainable.contains(embedding))
    let logits = try untouched.student.forward(tokens: tiny.windows[0]).logits.elements
    let path = directory.appending(path: "initial.safetensors").path
    try SpeedQDequantized.write(initial, over: tiny.source, to: path)
    let written = try DecoderModel(source: try SafetensorsFile(path: path), config: tiny.config)
    let reference = try written.logits(tokens: tiny.windows[0]).elements
    let difference = zip(logits, reference).map { abs($0 - $1) }.max() ?? .infinity
    #expect(difference < 1e-3, "student and written model differ by \(difference)")

    configuration.steps = 3
    let stage = try SpeedQStage3(
      teacher: tiny.teacher, source: tiny.source, config: tiny.config, configuration: configuration,
      windows: tiny.windows)
    let trained = try stage.run()
    let shape = try #require(stage.student.shapes[embedding])
    let latent = try #require(stage.student.parameters[embedding])
    let codes = try latent.withUnsafeBufferPointer {
      try BilevelQuantizer.quantize($0, rows: shape[0], columns: shape[1], configuration: .w4g32g128)
    }
    #expect(trained[embedding] == codes)
    #expect(trained[embedding] != initial[embedding])
    #expect(configuration.fingerprint.contains("embedding=trained"))
  }

  /// Under a bit allocation each linear trains on its own grid and is written on it; a kept
  /// linear is neither quantized nor trained. The student's forward pass is exactly the model
  /// the returned codes make.
  @Test func eachLinearTrainsAndIsWrittenOnItsOwnGrid() throws {
    let tiny = try TinyChat()
    let directory = try Self.temporaryDirectory()
    defer { try? FileManager.default.removeItem(at: directory) }
    let down = "model.layers.0.mlp.down_proj.weight"
    let kept = "model.layers.1.self_attn.v_proj.weight"
    var configuration = SpeedQConfiguration(grid: .w2g16g16, learningRate: 2e-3, steps: 0)
    configuration.linearGrids = [down: .w4g32g128]
    configuration.keptLinears = [kept]
    let untouched = try SpeedQStage3(
      teacher: tiny.teacher, source: tiny.source, config: tiny.config, configuration: configuration,
      windows: tiny.windows)
    let initial = try untouched.run()
    let logits = try untouched.student.forward(tokens: tiny.windows[0]).logits.elements
    let path = directory.appending(path: "initial.safetensors").path
    try SpeedQDequantized.write(initial, over: tiny.source, to: path)
    let written = try DecoderModel(source: try SafetensorsFile(path: path), config: tiny.config)
    let reference = try written.logits(tokens: tiny.windows[0]).elements
    let difference = zip(logits, reference).map { abs($0 - $1) }.max() ?? .infinity
    #expect(difference < 1e-3, "student and written model differ by \(difference)")

    configuration.steps = 3
    let stage = try SpeedQStage3(
      teacher: tiny.teacher, source: tiny.source, config: tiny.config, configuration: configuration,
      windows: tiny.windows)
    let trained = try stage.run()
    #expect(trained[down]?.bits == 4 && trained[down]?.groupLength == 32)
    #expect(trained["model.layers.0.mlp.up_proj.weight"]?.bits == 2)
    #expect(trained[kept] == nil)
    #expect(!stage.student.trainable.contains(kept))
    #expect(stage.student.parameters[kept] == (try tiny.source.floats(of: kept)))
    let latent = try #require(stage.student.parameters[down])
    let codes = try latent.withUnsafeBufferPointer {
      try BilevelQuantizer.quantize($0, rows: 64, columns: 128, configuration: .w4g32g128)
    }
    #expect(trained[down] == codes)
    #expect(trained[down] != initial[down])
    // The grids are part of what a resumed run must share.
    let plain = SpeedQConfiguration(grid: .w2g16g16, learningRate: 2e-3, steps: 3)
    #expect(configuration.fingerprint != plain.fingerprint)
    #expect(configuration.fingerprint.contains("\(down):w4g32g128") && configuration.fingerprint.contains("kept=\(kept)"))
  }

  /// Given Gram matrices, the clip search that starts training weighs each group's error by
  /// them: the latent weights are `GramClipSearch`'s clipped weights on each linear's grid.
  @Test func clipInitialisationUsesTheGramMatrices() throws {
    let tiny = try TinyChat()
    let grams = try CalibrationCollector(model: tiny.teacher).collectGrams(windows: tiny.windows)
    let down = "model.layers.1.mlp.down_proj.weight"
    let up = "model.layers.0.mlp.up_proj.weight"
    var configuration = SpeedQConfiguration(grid: .w2g16g16, steps: 0)
    configuration.linearGrids = [down: .w4g32g128]
    let stage = try SpeedQStage3(
      teacher: tiny.teacher, source: tiny.source, config: tiny.config, configuration: configuration,
      windows: tiny.windows, hessians: grams)
    for (name, rows, columns, bits, group) in [(down, 64, 128, 4, 32), (up, 128, 64, 2, 16)] {
      let weights = try tiny.source.floats(of: name)
      let hessian = try #require(grams[name])
      let expected = try GramClipSearch.quantize(
        weights, rows: rows, columns: columns, hessian: hessian, bits: bits, groupSize: .elements(group))
      #expect(stage.student.parameters[name] == expected.clippedWeights, "\(name)")
      let weightsOnly = try SpeedQClipInit.clamped(weights, rows: rows, columns: columns, bits: bits, groupSize: group)
      #expect(stage.student.parameters[name] != weightsOnly, "\(name): the Gram matrix changed nothing")
    }
  }

  /// γ is the teacher's mean top-1 probability over the first `confidenceWindows` windows only,
  /// computed here from softmax directly.
  @Test(arguments: [1, 2, 1000])
  func gammaAveragesTheFirstWindows(count: Int) throws {
    let tiny = try TinyChat()
    var configuration = SpeedQConfiguration(grid: .w2g16g16, steps: 0)
    configuration.confidenceWindows = count
    let stage = try SpeedQStage3(
      teacher: tiny.teacher, source: tiny.source, config: tiny.config, configuration: configuration,
      windows: tiny.windows)
    _ = try stage.run()
    let vocabulary = tiny.teacher.configuration.vocabularySize
    var sum = 0.0
    var positions = 0
    for window in tiny.windows.prefix(count) {
      let logits = try tiny.teacher.logits(tokens: window).elements.map(Double.init)
      for row in 0..<(logits.count / vocabulary) {
        let slice = logits[(row * vocabulary)..<((row + 1) * vocabulary)]
        let top = slice.max() ?? 0
        sum += 1 / slice.reduce(0.0) { $0 + Foundation.exp($1 - top) }
        positions += 1
      }
    }
    let gamma = try #require(stage.gamma)
    #expect(abs(gamma - sum / Double(positions)) < 1e-6, "γ \(gamma), by hand \(sum / Double(positions))")
  }

  /// The weights-only clip search keeps the same ranges as `GramClipSearch` under H = I, whose
  /// error Δwᵀ I Δw is the same squared weight error.
  @Test(arguments: [(1, 16), (7, 32), (8, 16), (65, 64)])
  func clipInitMatchesGramClipSearchUnderIdentity(rows: Int, columns: Int) throws {
    var generator = SplitMixGenerator(state: UInt64(rows * 1000 + columns))
    var weights = (0..<(rows * columns)).map { _ in generator.nextGaussian() * 0.05 }
    if rows > 1 { weights[columns] = 0.9 }  // an outlier the search should clip
    for bits in [2, 4] {
      for group in [16] {
        let clamped = try SpeedQClipInit.clamped(weights, rows: rows, columns: columns, bits: bits, groupSize: group)
        let reference = try GramClipSearch.quantize(
          weights, rows: rows, columns: columns, hessian: Matrix<Double>.identity(columns), bits: bits,
          groupSize: .elements(group))
        #expect(clamped == reference.clippedWeights)
      }
    }
  }
}
