import Foundation
import QCompute
import QEngine
import QFormats
import QToolSupport
import Testing

#if !DEBUG
  /// Sequential GPTQ against round-to-nearest on a real model, driven by
  /// Tests/RealModels/check-gptq.sh through environment variables. Release only.
  @Suite struct CalibrateRealModelTests {
    static let environment = ProcessInfo.processInfo.environment
    static let modelPath = environment["QCALIB_MODEL"]

    /// The ids of the start of a text file: enough characters for `tokens` ids, cut at a newline.
    static func leadingTokens(_ path: String, tokenizer: BPETokenizer, tokens: Int) throws -> [Int] {
      let text = try String(contentsOf: URL(fileURLWithPath: path), encoding: .utf8)
      var characters = tokens * 8
      while true {
        var prefix = String(text.prefix(characters))
        if prefix.count < text.count, let cut = prefix.lastIndex(of: "\n") { prefix = String(prefix[..<cut]) }
        let ids = TextDataset(documents: [prefix]).tokenize(with: tokenizer)
        if ids.count >= tokens || prefix.count >= text.count { return ids }
        characters *= 2
      }
    }

    static func peakResidentMiB() -> Int {
      guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
        let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmHWM:") })
      else { return -1 }
      return (Int(line.split(separator: " ").dropFirst().first ?? "") ?? -1) / 1024
    }

    @Test(.enabled(if: modelPath != nil))
    func gptqAgainstRoundToNearest() throws {
      let env = Self.environment
      let path = try #require(Self.modelPath)
      let context = Int(env["QCALIB_CONTEXT"] ?? "") ?? 512
      let calibrationWindows = Int(env["QCALIB_WINDOWS"] ?? "") ?? 32
      let evaluationWindows = Int(env["QCALIB_EVAL_WINDOWS"] ?? "") ?? 8
      let bitsList = (env["QCALIB_BITS"] ?? "3,2").split(separator: ",").compactMap { Int($0) }
      let group = Int(env["QCALIB_GROUP"] ?? "") ?? 64
      let trueSequential = env["QCALIB_TRUE_SEQUENTIAL"] != "0"
      let actOrder = env["QCALIB_ACT_ORDER"] == "1"
      let methods = (env["QCALIB_METHODS"] ?? "rtn,gptq").split(separator: ",").map(String.init)

      let clock = ContinuousClock()
      let checkpoint = try Checkpoint.open(path)
      let config = try ModelConfig(data: try #require(checkpoint.configData), location: path)
      let model = try DecoderModel(source: checkpoint.source, config: config)
      let tokenizer = try BPETokenizer(folder: URL(fileURLWithPath: path))
      let train = try Self.leadingTokens(
        try #require(env["QCALIB_TRAIN"]), tokenizer: tokenizer, tokens: calibrationWindows * context)
      let test = try Self.leadingTokens(
        try #require(env["QCALIB_TEST"]), tokenizer: tokenizer, tokens: evaluationWindows * context)
      let windows = (0..<calibrationWindows).compactMap { index -> [Int]? in
        let end = (index + 1) * context
        return end <= train.count ? Array(train[(index * context)..<end]) : nil
      }
      let evaluation = Array(test.prefix(evaluationWindows * context))
      print("gptq-check: model \(path), \(windows.count) calibration windows of \(context), \(evaluation.count) evaluation tokens")

      var start = clock.now
      let reference = try model.perplexity(tokens: evaluation, context: context)
      print("gptq-check: FP perplexity \(String(format: "%.4f", reference.perplexity)) in \(clock.now - start)")

      for bits in bitsList {
        let grid = CalibratedGrid.affine(bits: bits, groupSize: .elements(group))
        let plan: (String) -> CalibratedGrid? = { $0.hasSuffix("_proj.weight") ? grid : nil }
        for name in methods {
          let method: SequentialGPTQ.Method =
            switch name {
            case "gptq": .gptq(GPTQ.Options(actOrder: actOrder))
            case "clip": .clip
            default: .roundToNearest
            }
          start = clock.now
          var lastBlock = -1
          let quantized = try SequentialGPTQ.run(
            model: model, windows: windows, plan: plan, method: method,
            options: .init(trueSequential: trueSequential)
          ) { progress in
            if progress.block != lastBlock, progress.block % 10 == 0 {
              lastBlock = progress.block
              print("gptq-check:   \(name) block \(progress.block)/\(progress.blocks) after \(clock.now - start)")
            }
          }
          let quantizeTime = clock.now - start
          start = clock.now
          let overlay = try OverlayTensorSource(
            base: checkpoint.source, replacements: quantized.mapValues { $0.dequantize() })
          let quantizedModel = try DecoderModel(source: overlay, config: config)
          let result = try quantizedModel.perplexity(tokens: evaluation, context: context)
          print(
            "gptq-check: \(grid) \(name)\(name == "gptq" && actOrder ? " act-order" : ""): perplexity \(String(format: "%.4f", result.perplexity)), "
              + "quantize \(quantizeTime), evaluate \(clock.now - start), peak RSS \(Self.peakResidentMiB()) MiB")
          #expect(result.perplexity.isFinite)
        }
      }
    }
  }
#endif
