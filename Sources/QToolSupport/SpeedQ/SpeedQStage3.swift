import Foundation
import QCompute
import QEngine
import QFormats

/// SPEED-Q's stage 3 for a decoder language model (speedq.md 1-3): quantization-aware training
/// of every decoder linear on its bilevel grid (one for all, or per linear from a bit
/// allocation) through the straight-through estimator, from clip-initialised weights, with the
/// FP model as teacher.
///
/// Embeddings and lm_head are put on the 4-bit symmetric g32 grid once and frozen (or, asked
/// for, train on a bilevel grid like the linears); norms and
/// biases train in full precision beside the linears (unless the configuration keeps them). The
/// loss is `λ CAKLD(student, teacher) + ζ CE_ε`, with CAKLD's `γ` the teacher's mean top-1
/// probability over the first windows, computed once before training.
/// Teacher logits are computed per window as needed and never stored.
public final class SpeedQStage3 {
  public let teacher: DecoderModel
  public let configuration: SpeedQConfiguration
  public let windows: [[Int]]
  /// Put before every returned tensor name (`language_model.` for a LLaVA checkpoint).
  public let prefix: String
  /// CAKLD's γ, once computed (or read from a resumed checkpoint).
  public internal(set) var gamma: Double?
  /// Optimizer steps taken so far, counting those of a resumed run.
  public var completedSteps: Int { optimizer.step }

  var student: TrainableDecoder
  var optimizer: AdamW
  /// The frozen embedding and lm_head on their 4-bit grid, by unprefixed name.
  let frozenQuantized: [String: QuantizedMatrix]
  /// The matrices that train on a grid (unprefixed): the decoder linears in layer order, then a
  /// trained embedding and untied head; and the grid of each. A kept linear is in neither.
  let linearNames: [String]
  let linearGrids: [String: BilevelQuantizer.Configuration]
  /// The norm weights and biases that train in full precision (unprefixed, sorted); empty when
  /// the configuration keeps them.
  let fullPrecisionNames: [String]
  /// Where the checkpoint keeps an untied head: under the prefix, or at the top level in a
  /// wrapper that splits it from its language model (`model.text_model.`, `model.language_model.`).
  let storedHeadName: String

  /// Prepares the student from `source` (usually the teacher's own checkpoint): embeddings to
  /// 4 bits, linears clip-initialised and clamped, fake quantizers set.
  /// - Parameters:
  ///   - hessians: optional input Gram matrices per linear weight name (unprefixed,
  ///     `model.layers.0.mlp.up_proj.weight`); where present the clip search uses them.
  ///   - initialWeights: latent starting values per linear weight name (unprefixed), e.g. GPTQ's
  ///     dequantized codes; these linears skip the clip search.
  ///   - windows: the calibration/training token windows (each at least 2 tokens).
  /// - Throws: `SpeedQError` for empty windows or a grid the weights cannot take; what
  ///   `TrainableDecoder` throws for a checkpoint that does not fit `config`.
  public init(
    teacher: DecoderModel, source: any TensorSource, config: ModelConfig, prefix: String = "",
    configuration: SpeedQConfiguration, windows: [[Int]], hessians: [String: Matrix<Double>] = [:],
    initialWeights: [String: [Float]] = [:]
  ) throws {
    guard !windows.isEmpty, windows.allSatisfy({ $0.count >= 2 }) else {
      throw SpeedQError.invalidInput(operation: "SpeedQ stage 3", reason: "needs windows of at least 2 tokens")
    }
    guard configuration.steps >= 0, configuration.batchSize > 0 else {
      throw SpeedQError.invalidInput(
        operation: "SpeedQ stage 3",
        reason: "steps \(configuration.steps) and batch size \(configuration.batchSize) do not make a run")
    }
    self.teacher = teacher
    self.configuration = configuration
    self.windows = windows
    self.prefix = prefix
    storedHeadName =
      source.info(named: prefix + "lm_head.weight") == nil && source.info(named: "lm_head.weight") != nil
      ? "lm_head.weight" : prefix + "lm_head.weight"
    var student = try TrainableDecoder(source: source, config: config, prefix: prefix)
    let c = student.configuration
    guard teacher.configuration == c else {
      throw SpeedQError.invalidInput(operation: "SpeedQ stage 3", reason: "teacher and student configurations differ")
    }
    // Embedding and untied head: on their grid (SPEED-Q's 4-bit symmetric g32 unless asked
    // otherwise), once, then frozen.
    var frozen: [String: QuantizedMatrix] = [:]
    var parameters = student.parameters
    for name in ["model.embed_tokens.weight", "lm_head.weight"] {
      guard let values = parameters[name] else { continue }
      let matrix: QuantizedMatrix
      switch configuration.embedding {
      case .kept, .trained: continue
      case .speedQ:
        matrix = try Self.quantizeEmbedding(values, rows: c.vocabularySize, columns: c.hiddenSize, name: name)
      case .packed(let spec):
        matrix = try Self.quantizeEmbedding(
          values, info: TensorInfo(name: prefix + name, dtype: .f32, shape: [c.vocabularySize, c.hiddenSize]),
          spec: spec)
      }
      frozen[name] = matrix
      parameters[name] = matrix.dequantize()
    }
    // Linears: clip search on each one's grid, hard clamp; kept linears stay as they are, frozen.
    var names: [String] = []
    var grids: [String: BilevelQuantizer.Configuration] = [:]
    for layer in 0..<c.layerCount {
      for module in TrainableDecoder.linearModules(layer: layer, architecture: c.architecture) {
        let name = module + ".weight"
        guard let grid = configuration.grid(for: name) else { continue }
        names.append(name)
        grids[name] = grid
      }
    }
    if case .trained(let grid) = configuration.embedding {
      for name in ["model.embed_tokens.weight", "lm_head.weight"] where parameters[name] != nil {
        names.append(name)
        grids[name] = grid
      }
    }
    let shapes = student.shapes
    for name in names {
      guard let values = parameters[name], let shape = shapes[name], shape.count == 2, let grid = grids[name] else {
        throw SpeedQError.quantization(tensor: name, reason: "is not a matrix of the decoder")
      }
      if let initial = initialWeights[name] {
        guard initial.count == values.count else {
          throw SpeedQError.quantization(
            tensor: name, reason: "has \(values.count) weights but its initial values \(initial.count)")
        }
        parameters[name] = initial
        continue
      }
      // The reference matches module names, so a fused `qkv_proj` (Phi-3) is clipped whole.
      let isQueryKey = name.contains("q_proj") || name.contains("k_proj")
      if configuration.clipSkipsQueryKey && isQueryKey { continue }
      if let hessian = hessians[name] {
        do {
          parameters[name] = try GramClipSearch.quantize(
            values, rows: shape[0], columns: shape[1], hessian: hessian, bits: grid.bits,
            groupSize: .elements(grid.groupSize)
          ).clippedWeights
        } catch { throw SpeedQError.quantization(tensor: name, reason: "\(error)") }
      } else {
        parameters[name] = try SpeedQClipInit.clamped(
          values, rows: shape[0], columns: shape[1], bits: grid.bits, groupSize: grid.groupSize)
      }
    }
    student.parameters = parameters
    for grid in Set(grids.values) {
      try student.setQuantizer(
        GroupAffineFakeQuantizer(bits: grid.bits, groupSize: grid.groupSize, scaleGroupSize: grid.scaleGroupSize),
        for: names.filter { grids[$0] == grid })
    }
    let fullPrecision = configuration.trainsNormsAndBiases ? parameters.keys.filter(Self.isNormOrBias).sorted() : []
    student.trainable = Set(names + fullPrecision)
    self.student = student
    self.linearNames = names
    self.linearGrids = grids
    self.fullPrecisionNames = fullPrecision
    self.frozenQuantized = frozen
    self.optimizer = AdamW(weightDecay: configuration.weightDecay)
    optimizer.decayExempt = Set(fullPrecision)
  }

  /// RMSNorm weights (`input_layernorm`, `post_attention_layernorm`, the final `model.norm`)
  /// and linear biases: what the reference trains in full precision besides the latent linears.
  static func isNormOrBias(_ name: String) -> Bool {
    name.hasSuffix("norm.weight") || name.hasSuffix(".bias")
  }

  /// The norm weights and biases as trained so far, by (prefixed) name; empty when the
  /// configuration keeps them as stored. The pack stores them in place of the source's values.
  public func fullPrecisionWeights() -> [String: [Float]] {
    let parameters = student.parameters
    var out: [String: [Float]] = [:]
    for name in fullPrecisionNames { out[prefix + name] = parameters[name] }
    return out
  }

  /// Trains (resuming from `configuration.checkpointPath` when a checkpoint is there) and
  /// returns every quantized tensor by (prefixed) name: the decoder linears on the bilevel grid
  /// from the final latent weights, the embedding (and an untied lm_head) on the 4-bit grid.
  /// - Throws: `SpeedQError` for a checkpoint of another run, training errors.
  public func run(progress: (SpeedQProgress) -> Void = { _ in }) throws -> [String: QuantizedMatrix] {
    if let path = configuration.checkpointPath, FileManager.default.fileExists(atPath: path) {
      try loadCheckpoint(from: path)
    }
    if gamma == nil { gamma = try teacherConfidence() }
    let gamma = self.gamma ?? 0
    let total = configuration.steps
    let last = min(total, configuration.stopAfterStep ?? total)
    let schedule = CosineSchedule(
      peak: configuration.learningRate, totalSteps: total,
      warmupSteps: Int((Double(total) * configuration.warmupFraction).rounded(.up)))
    var savedAt = optimizer.step
    while optimizer.step < last {
      let step = optimizer.step
      let batch = (0..<configuration.batchSize).map { windows[(step * configuration.batchSize + $0) % windows.count] }
      let (losses, gradients) = try lossAndGradients(batch: batch, gamma: gamma)
      var parameterGradients = gradients
      if let maxNorm = configuration.maxGradientNorm {
        GradientClipping.clip(&parameterGradients, maxNorm: maxNorm)
      }
      let learningRate = schedule.learningRate(at: step)
      try optimizer.update(&student.parameters, gradients: parameterGradients, learningRate: learningRate)
      progress(
        SpeedQProgress(
          step: optimizer.step, totalSteps: total, loss: losses.total, distillation: losses.distillation,
          crossEntropy: losses.crossEntropy, learningRate: learningRate))
      if let path = configuration.checkpointPath, configuration.checkpointInterval > 0,
        optimizer.step % configuration.checkpointInterval == 0
      {
        try saveCheckpoint(to: path)
        savedAt = optimizer.step
      }
    }
    if let path = configuration.checkpointPath, savedAt != optimizer.step || !FileManager.default.fileExists(atPath: path) {
      try saveCheckpoint(to: path)
    }
    return try quantizedWeights()
  }

  /// The bilevel quantization of the current latent matrices plus the frozen embedding grid.
  public func quantizedWeights() throws -> [String: QuantizedMatrix] {
    var out: [String: QuantizedMatrix] = [:]
    for (name, matrix) in frozenQuantized { out[name == "lm_head.weight" ? storedHeadName : prefix + name] = matrix }
    let parameters = student.parameters
    let shapes = student.shapes
    for name in linearNames {
      guard let values = parameters[name], let shape = shapes[name], let grid = linearGrids[name] else {
        throw SpeedQError.quantization(tensor: name, reason: "is not a matrix of the decoder")
      }
      do {
        out[name == "lm_head.weight" ? storedHeadName : prefix + name] = try values.withUnsafeBufferPointer { (buffer) throws(QuantizeError) in
          try BilevelQuantizer.quantize(buffer, rows: shape[0], columns: shape[1], configuration: grid)
        }
      } catch { throw SpeedQError.quantization(tensor: name, reason: "\(error)") }
    }
    return out
  }

  /// The loss terms of one batch and the gradients of the trainable parameters.
  func lossAndGradients(batch: [[Int]], gamma: Double) throws -> (
    (total: Double, distillation: Double, crossEntropy: Double), [String: [Float]]
  ) {
    let vocabulary = student.configuration.vocabularySize
    let pass = try student.forward(sequences: batch)
    var teacherLogits: [Float] = []
    teacherLogits.reserveCapacity(pass.logits.count)
    var targets: [Int] = []
    for sequence in batch {
      teacherLogits += try teacher.logits(tokens: sequence).elements
      targets += Array(sequence.dropFirst()) + [-100]
    }
    let studentLogits = pass.logits.elements
    let distillation = try TrainingLoss.cakld(
      student: studentLogits, teacher: teacherLogits, vocabularySize: vocabulary, gamma: gamma, reduction: .sum)
    let crossEntropy = try TrainingLoss.crossEntropy(
      logits: studentLogits, vocabularySize: vocabulary, targets: targets,
      labelSmoothing: configuration.labelSmoothing)
    let batchCount = Double(batch.count)
    let kdWeight = configuration.distillationWeight / batchCount
    let ceWeight = configuration.crossEntropyWeight
    var gradient = [Float](repeating: 0, count: studentLogits.count)
    for index in gradient.indices {
      gradient[index] = Float(
        kdWeight * Double(distillation.gradient[index]) + ceWeight * Double(crossEntropy.gradient[index]))
    }
    let gradients = try student.backward(pass, dLogits: gradient)
    let kd = distillation.value / batchCount
    return ((configuration.distillationWeight * kd + ceWeight * crossEntropy.value, kd, crossEntropy.value), gradients)
  }

  /// The teacher's mean top-1 probability over every position of the first
  /// `configuration.confidenceWindows` windows, as the reference averages it over its first 101
  /// batches: a mean over tens of thousands of positions, which more windows would not move.
  func teacherConfidence() throws -> Double {
    var accumulator = ConfidenceAccumulator()
    for window in windows.prefix(max(1, configuration.confidenceWindows)) {
      try accumulator.add(
        teacherLogits: try teacher.logits(tokens: window).elements,
        vocabularySize: teacher.configuration.vocabularySize)
    }
    return accumulator.gamma
  }

  /// An embedding on any pack grid, exactly as the pack will store it.
  static func quantizeEmbedding(_ values: [Float], info: TensorInfo, spec: PackSpec) throws -> QuantizedMatrix {
    do {
      return try values.withUnsafeBufferPointer { (buffer) throws(PackError) in
        try PackEncoder.quantize(buffer, info: info, spec: spec, location: "SpeedQ stage 3")
      }
    } catch { throw SpeedQError.quantization(tensor: info.name, reason: "\(error)") }
  }

  static func quantizeEmbedding(_ values: [Float], rows: Int, columns: Int, name: String) throws -> QuantizedMatrix {
    do {
      return try values.withUnsafeBufferPointer { (buffer) throws(QuantizeError) in
        try SymmetricQuantizer.quantize(
          buffer, rows: rows, columns: columns, bits: 4, groupSize: .elements(32), variant: .embedding)
      }
    } catch { throw SpeedQError.quantization(tensor: name, reason: "\(error)") }
  }
}
