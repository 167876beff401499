import Foundation
import QCompute
import QEngine
import QFormats
import Testing

@testable import QToolSupport

#if !DEBUG
  /// SPEED-Q stage 3 on a real model, driven by environment variables (disabled without
  /// `SPEEDQ_MODEL`, `SPEEDQ_TRAIN_TEXT` and `SPEEDQ_TEST_TEXT`); run by
  /// Tests/RealModels/check-speedq.sh. Release only. Training must beat the grid it starts from.
  ///
  /// - `SPEEDQ_MODEL`: model folder; `SPEEDQ_TRAIN_TEXT`, `SPEEDQ_TEST_TEXT`: corpus files;
  /// - `SPEEDQ_WINDOWS` (default 32) training windows of `SPEEDQ_CONTEXT` (512) tokens;
  /// - `SPEEDQ_STEPS`, or `SPEEDQ_MINUTES` (15) of training estimated from one timed step;
  /// - `SPEEDQ_LR` (5e-5), `SPEEDQ_GRID` (w2g16g16 or w4g32g128), `SPEEDQ_EVAL_WINDOWS` (8).
  @Suite struct SpeedQRealModelTests {
    static let environment = ProcessInfo.processInfo.environment

    @Test(
      .enabled(
        if: environment["SPEEDQ_MODEL"] != nil && environment["SPEEDQ_TRAIN_TEXT"] != nil
          && environment["SPEEDQ_TEST_TEXT"] != nil,
        "needs SPEEDQ_MODEL, SPEEDQ_TRAIN_TEXT and SPEEDQ_TEST_TEXT (Tests/RealModels/check-speedq.sh)"))
    func stage3OnARealModel() throws {
      let environment = Self.environment
      let path = try #require(environment["SPEEDQ_MODEL"])
      let trainPath = try #require(environment["SPEEDQ_TRAIN_TEXT"])
      let testPath = try #require(environment["SPEEDQ_TEST_TEXT"])
      let folder = URL(fileURLWithPath: (path as NSString).expandingTildeInPath)
      let checkpoint = try Checkpoint.open(folder.path)
      let config = try ModelConfig(data: try Data(contentsOf: folder.appending(path: "config.json")), location: folder.path)
      let teacher = try DecoderModel(source: checkpoint.source, config: config)
      let tokenizer = try BPETokenizer(folder: folder)
      let context = Int(environment["SPEEDQ_CONTEXT"] ?? "") ?? 512
      let windowCount = Int(environment["SPEEDQ_WINDOWS"] ?? "") ?? 32
      let evalWindows = Int(environment["SPEEDQ_EVAL_WINDOWS"] ?? "") ?? 8
      let grid: BilevelQuantizer.Configuration = environment["SPEEDQ_GRID"] == "w4g32g128" ? .w4g32g128 : .w2g16g16
      let learningRate = Double(environment["SPEEDQ_LR"] ?? "") ?? 5e-5
      let trainText = try String(contentsOfFile: trainPath, encoding: .utf8)
      let trainIds = Array(tokenizer.encode(trainText, addSpecialTokens: false).prefix(context * windowCount))
      let windows = try TokenWindows(ids: trainIds, context: context).map { Array($0.ids) }.filter { $0.count == context }
      let testIds = tokenizer.encode(try String(contentsOfFile: testPath, encoding: .utf8), addSpecialTokens: false)
      let directory = FileManager.default.temporaryDirectory.appending(path: "speedq-real-\(UUID().uuidString)")
      try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
      defer { try? FileManager.default.removeItem(at: directory) }
      let clock = ContinuousClock()

      @discardableResult
      func perplexity(_ quantized: [String: QuantizedMatrix]?, _ label: String) throws -> Double {
        let model: DecoderModel
        if let quantized {
          let file = directory.appending(path: "\(label).safetensors").path
          try SpeedQDequantized.write(quantized, over: checkpoint.source, to: file)
          model = try DecoderModel(source: try SafetensorsFile(path: file), config: config)
        } else {
          model = teacher
        }
        let result = try model.perplexity(tokens: testIds, context: context, maxWindows: evalWindows)
        print("speedq: perplexity \(label): \(String(format: "%.2f", result.perplexity)) (\(result.scoredTokens) tokens)")
        return Double(result.perplexity)
      }

      let fullPrecision = try perplexity(nil, "fp")
      // RTN on the bilevel grid, embeddings on SPEED-Q's 4-bit policy.
      var rtn: [String: QuantizedMatrix] = [:]
      let names = checkpoint.source.tensors.filter { $0.shape.count == 2 }.map(\.name)
      for name in names {
        guard let info = checkpoint.source.info(named: name) else { continue }
        let values = try checkpoint.source.floats(of: name)
        if name.hasSuffix("embed_tokens.weight") || name == "lm_head.weight" {
          rtn[name] = try SpeedQStage3.quantizeEmbedding(values, rows: info.shape[0], columns: info.shape[1], name: name)
        } else {
          rtn[name] = try values.withUnsafeBufferPointer {
            try BilevelQuantizer.quantize($0, rows: info.shape[0], columns: info.shape[1], configuration: grid)
          }
        }
      }
      let roundToNearest = try perplexity(rtn, "rtn-\(grid)")
      rtn = [:]

      var configuration = SpeedQConfiguration(grid: grid, learningRate: learningRate, steps: 0)
      let clipStart = clock.now
      let clipInit = try SpeedQStage3(
        teacher: teacher, source: checkpoint.source, config: config, configuration: configuration, windows: windows)
      print("speedq: clip initialisation \(clock.now - clipStart)")
      let clipInitialised = try perplexity(try clipInit.quantizedWeights(), "clip-init-\(grid)")

      var steps = Int(environment["SPEEDQ_STEPS"] ?? "") ?? 0
      if steps == 0 {
        let minutes = Double(environment["SPEEDQ_MINUTES"] ?? "") ?? 15
        let probeStart = clock.now
        _ = try clipInit.lossAndGradients(batch: [windows[0]], gamma: 0.5)
        let seconds = Double((clock.now - probeStart).components.seconds) + 1
        steps = max(1, Int(minutes * 60 / (seconds * 1.1)))
        print("speedq: one step takes about \(seconds) s, so \(steps) steps")
      }
      configuration.steps = steps
      let stage = try SpeedQStage3(
        teacher: teacher, source: checkpoint.source, config: config, configuration: configuration, windows: windows)
      let start = clock.now
      let trained = try stage.run { progress in
        if progress.step == 1 || progress.step % 10 == 0 || progress.step == progress.totalSteps {
          print(
            "speedq: step \(progress.step)/\(progress.totalSteps) loss \(String(format: "%.2f", progress.loss))",
            "(kd \(String(format: "%.2f", progress.distillation)), ce \(String(format: "%.3f", progress.crossEntropy)))",
            "lr \(String(format: "%.2e", progress.learningRate)) at \(clock.now - start)")
        }
      }
      let status = (try? String(contentsOfFile: "/proc/self/status", encoding: .utf8)) ?? ""
      let peak = status.split(separator: "\n").first { $0.hasPrefix("VmHWM") } ?? "VmHWM unknown"
      print(
        "speedq: \(steps) steps on \(windows.count) windows of \(context) in \(clock.now - start),",
        "gamma \(stage.gamma ?? 0), \(peak)")
      let distilled = try perplexity(trained, "qat-\(grid)")
      // Only weight matrices are trained, and each stage improves on the one before it.
      #expect(!trained.isEmpty && Set(trained.keys).isSubset(of: Set(names)))
      #expect(fullPrecision.isFinite && distilled.isFinite)
      #expect(clipInitialised <= roundToNearest)
      #expect(distilled < clipInitialised && distilled >= fullPrecision * 0.99)
    }
  }
#endif
