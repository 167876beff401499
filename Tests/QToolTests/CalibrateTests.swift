import Foundation
import QCompute
import QEngine
import QFormats
import QToolSupport
import Testing

/// Sequential GPTQ, the sensitivity report and packing of calibrated matrices on Fixtures/tiny-chat.
@Suite struct CalibrateTests {
  struct Setup {
    var source: SafetensorsFile
    var config: ModelConfig
    var model: DecoderModel
    var windows: [[Int]]
    var evaluation: [Int]
  }

  static func setup() throws -> Setup {
    let folder = fixturesDirectory.appendingPathComponent("tiny-chat")
    let source = try SafetensorsFile(path: folder.appendingPathComponent("model.safetensors").path)
    let configURL = folder.appendingPathComponent("config.json")
    let config = try ModelConfig(data: try Data(contentsOf: configURL), location: configURL.path)
    let model = try DecoderModel(source: source, config: config)
    let tokenizer = try BPETokenizer(folder: folder)
    let text = try String(
      contentsOf: fixturesDirectory.appendingPathComponent("tiny-chat.sample.txt"), encoding: .utf8)
    let collector = CalibrationCollector(model: model, tokenizer: tokenizer)
    let dataset = TextDataset(documents: [text])
    let windows = try collector.windows(of: dataset, context: 32)
    return Setup(
      source: source, config: config, model: model, windows: windows,
      evaluation: dataset.tokenize(with: tokenizer))
  }

  /// Mean next-token NLL of a model with `quantized` weights (dequantized) in place of the originals.
  static func meanNLL(_ setup: Setup, _ quantized: [String: QuantizedMatrix]) throws -> Double {
    let overlay = try OverlayTensorSource(base: setup.source, replacements: quantized.mapValues { $0.dequantize() })
    let model = try DecoderModel(source: overlay, config: setup.config)
    return try model.perplexity(tokens: setup.evaluation, context: 64).meanNegativeLogLikelihood
  }

  /// Mean KL(FP || quantized) of next-token distributions over the first 64 evaluation tokens, in Double.
  static func meanKL(_ setup: Setup, _ quantized: [String: QuantizedMatrix]) throws -> Double {
    let overlay = try OverlayTensorSource(base: setup.source, replacements: quantized.mapValues { $0.dequantize() })
    let model = try DecoderModel(source: overlay, config: setup.config)
    let tokens = Array(setup.evaluation.prefix(64))
    let p = try setup.model.logits(tokens: tokens)
    let q = try model.logits(tokens: tokens)
    func logSoftmax(_ row: [Float]) -> [Double] {
      let largest = Double(row.max() ?? 0)
      let total = log(row.reduce(0.0) { $0 + exp(Double($1) - largest) })
      return row.map { Double($0) - largest - total }
    }
    var sum = 0.0
    for r in 0..<tokens.count {
      let lp = logSoftmax(p.row(r))
      let lq = logSoftmax(q.row(r))
      for i in lp.indices { sum += exp(lp[i]) * (lp[i] - lq[i]) }
    }
    return sum / Double(tokens.count)
  }

  static func everyLinear(_ name: String) -> CalibratedGrid? {
    name.contains("_proj.") ? .affine(bits: 3, groupSize: .elements(32)) : nil
  }

  @Test func gptqRaisesPerplexityLessThanRoundToNearestAt3Bits() throws {
    let setup = try Self.setup()
    #expect(setup.windows.count >= 3)
    let reference = try setup.model.perplexity(tokens: setup.evaluation, context: 64).meanNegativeLogLikelihood
    var tensors: [String] = []
    let gptq = try SequentialGPTQ.run(
      model: setup.model, windows: setup.windows, plan: Self.everyLinear, method: .gptq()
    ) { tensors.append($0.tensor) }
    let rtn = try SequentialGPTQ.run(
      model: setup.model, windows: setup.windows, plan: Self.everyLinear, method: .roundToNearest)
    #expect(gptq.count == 14 && rtn.count == 14)
    #expect(tensors.count == 14 && Set(tensors) == Set(gptq.keys))
    // Round-to-nearest through the driver is the grid's own quantizer.
    let down = try setup.source.floats(of: "model.layers.1.mlp.down_proj.weight")
    let direct = try down.withUnsafeBufferPointer {
      try AffineQuantizer.quantize($0, rows: 64, columns: 128, bits: 3, groupSize: .elements(32))
    }
    #expect(rtn["model.layers.1.mlp.down_proj.weight"] == direct)

    let gptqIncrease = try Self.meanNLL(setup, gptq) - reference
    let rtnIncrease = try Self.meanNLL(setup, rtn) - reference
    let rtnKL = try Self.meanKL(setup, rtn)
    let gptqKL = try Self.meanKL(setup, gptq)
    print("tiny-chat 3-bit g32: mean NLL FP \(reference), +\(rtnIncrease) RTN, +\(gptqIncrease) GPTQ; KL \(rtnKL) RTN, \(gptqKL) GPTQ")
    // The fixture's weights are random, so perplexity barely moves; the KL to the
    // full-precision model is the sharper measure of what GPTQ preserves.
    #expect(rtnIncrease > 0)
    #expect(gptqIncrease < rtnIncrease)
    #expect(gptqKL < 0.5 * rtnKL)
  }

  @Test func keptTensorsAreNotQuantizedAndClipRuns() throws {
    let setup = try Self.setup()
    let plan: (String) -> CalibratedGrid? = { name in
      name.hasSuffix("mlp.down_proj.weight") ? .affine(bits: 2, groupSize: .elements(16)) : nil
    }
    let clip = try SequentialGPTQ.run(
      model: setup.model, windows: setup.windows, plan: plan, method: .clip,
      options: .init(trueSequential: false))
    #expect(Set(clip.keys) == ["model.layers.0.mlp.down_proj.weight", "model.layers.1.mlp.down_proj.weight"])
    #expect(clip.values.allSatisfy { $0.method == .clipSearch && $0.bits == 2 })
  }

  @Test func gridThatDoesNotFitNamesTheTensor() throws {
    let setup = try Self.setup()
    #expect {
      _ = try SequentialGPTQ.run(
        model: setup.model, windows: setup.windows,
        plan: { _ in .affine(bits: 3, groupSize: .elements(48)) }, method: .gptq())
    } throws: { error in
      guard case .tensorFailed(let tensor, _) = error as? CalibrateError else { return false }
      return tensor == "model.layers.0.self_attn.q_proj.weight"
    }
  }

  @Test(arguments: [
    CalibratedGrid.affine(bits: 3, groupSize: .elements(32)),
    .symmetric(bits: 4, groupSize: .elements(32)),
    .bilevel(.init(bits: 2, groupSize: 16, scaleGroupSize: 16)),
  ])
  func calibratedMatricesPackAndReadBack(grid: CalibratedGrid) throws {
    let setup = try Self.setup()
    let name = "model.layers.0.mlp.up_proj.weight"
    let result = try SequentialGPTQ.run(
      model: setup.model, windows: setup.windows, plan: { $0 == name ? grid : nil }, method: .gptq())
    let quantized = try #require(result[name])
    let spec: PackSpec =
      switch grid {
      case .affine(let bits, let group): PackSpec(bits: bits, groupSize: group, grid: .affine, method: .rtn, scaleDType: .f32)
      case .symmetric(let bits, let group): PackSpec(bits: bits, groupSize: group, grid: .symmetric, method: .rtn, scaleDType: .f32)
      case .bilevel(let configuration): PackSpec.speedQ(bits: configuration.bits, scaleDType: .f32)
      }
    let info = TensorInfo(name: name, dtype: .f16, shape: [128, 64])
    let packed = try PackEncoder.pack(quantized: quantized, info: info, spec: spec, location: "test")
    // With F32 scales nothing is rounded: the pack holds exactly what GPTQ chose.
    #expect(packed.matrix == quantized)

    let path = FileManager.default.temporaryDirectory.appendingPathComponent("calib-\(UUID().uuidString).safetensors").path
    defer { try? FileManager.default.removeItem(atPath: path) }
    let metadata = [
      PackDescription.versionKey: PackDescription.version, packed.metadataEntry.key: packed.metadataEntry.value,
    ]
    let writer = try SafetensorsWriter(path: path, plan: packed.companions.map(\.info), metadata: metadata, order: .asGiven)
    for companion in packed.companions { try writer.append(name: companion.info.name, bytes: companion.bytes) }
    try writer.finish()
    let pack = try PackedCheckpoint(wrapping: try SafetensorsFile(path: path))
    #expect(try pack.dequantizedFloats(of: name) == quantized.dequantize())

    // A matrix that does not fit the spec is refused.
    let other = PackSpec(bits: 4, groupSize: .elements(64), grid: .affine, method: .rtn, scaleDType: .f16)
    #expect(throws: PackError.self) {
      try PackEncoder.pack(quantized: quantized, info: info, spec: other, location: "test")
    }
  }

  @Test func sensitivityFallsWithBitsAndAllocationMeetsTheBudget() throws {
    let setup = try Self.setup()
    let collector = CalibrationCollector(model: setup.model)
    let grams = try collector.collectGrams(windows: setup.windows)
    let candidates: [CalibratedGrid] = [2, 3, 4, 8].map { .affine(bits: $0, groupSize: .elements(32)) }
    let report = try SensitivityReport.compute(model: setup.model, grams: grams, candidates: candidates)
    #expect(report.rows.count == 14)
    #expect(report.candidates.map(\.bitsPerWeight) == [3, 4, 5, 9])
    for row in report.rows {
      let errors = row.relativeErrors.compactMap { $0 }
      #expect(errors.count == 4 && errors.allSatisfy { $0 > 0 && $0 < 1 }, "\(row.tensor)")
      #expect(zip(errors, errors.dropFirst()).allSatisfy { $0 > $1 }, "\(row.tensor)")
    }
    // Components: the whole language model, then one per layer kind.
    #expect(report.components.first?.component == "language_model")
    #expect(report.components.first?.parameters == report.rows.reduce(0) { $0 + $1.parameters })
    #expect(report.components.count == 8)

    let total = Double(report.rows.reduce(0) { $0 + $1.parameters })
    for target in [3.0, 3.6, 4.5, 9.0] {
      let choice = try report.allocate(bitsPerWeight: target)
      #expect(choice.count == 14)
      let used = report.rows.reduce(0.0) { sum, row in
        sum + SensitivityReport.bitsPerWeight(choice[row.tensor] ?? candidates[0], columns: 64) * Double(row.parameters)
      }
      #expect(used / total <= target + 1e-9)
    }
    #expect(try report.allocate(bitsPerWeight: 3.0).values.allSatisfy { $0.bits == 2 })
    #expect(try report.allocate(bitsPerWeight: 9.0).values.allSatisfy { $0.bits == 8 })
    #expect(throws: CalibrateError.self) { try report.allocate(bitsPerWeight: 2.5) }

    let json = try JSONSerialization.jsonObject(with: try report.jsonData()) as? [String: Any]
    #expect((json?["rows"] as? [Any])?.count == 14)
    #expect(report.renderTable().contains("model.layers.1.mlp.down_proj.weight"))
  }

  /// A bilevel grid whose second-level chunk is longer than a tensor's scales (k/v: 32 rows × 2
  /// groups of 32 = 64 scales, chunks of 128) is reported as null there and never allocated to it.
  @Test func bilevelGridsThatDoNotFitATensorAreNeverAllocated() throws {
    let setup = try Self.setup()
    let grams = try CalibrationCollector(model: setup.model).collectGrams(windows: setup.windows)
    let candidates: [CalibratedGrid] = [.bilevel(.w2g16g16), .bilevel(.w4g32g128)]
    let report = try SensitivityReport.compute(model: setup.model, grams: grams, candidates: candidates)
    for row in report.rows {
      let fits = !(row.tensor.contains("k_proj") || row.tensor.contains("v_proj"))
      #expect((row.relativeErrors[1] != nil) == fits, "\(row.tensor)")
      #expect(row.relativeErrors[0] != nil, "\(row.tensor)")
    }
    #expect(report.components.first?.relativeErrors[1] == nil)
    let generous = try report.allocate(bitsPerWeight: 8)
    for (tensor, grid) in generous {
      let fits = !(tensor.contains("k_proj") || tensor.contains("v_proj"))
      #expect(grid == (fits ? candidates[1] : candidates[0]), "\(tensor)")
    }
    let json = String(decoding: try report.jsonData(), as: UTF8.self)
    #expect(json.contains("null"))
    #expect(report.renderTable().split(separator: "\n").contains { $0.contains("k_proj") && $0.hasSuffix(" -") })
    // A tensor left out (kept by a rule) takes no part in the allocation or its budget.
    let among = Set(report.rows.map(\.tensor).filter { !$0.contains("down_proj") })
    let partial = try report.allocate(bitsPerWeight: 3, among: among)
    #expect(Set(partial.keys) == among)
  }
}
