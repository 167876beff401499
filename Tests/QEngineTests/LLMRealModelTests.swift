import Foundation
import QCompute
import QFormats
import Testing

@testable import QEngine

#if !DEBUG
  /// A real model against the numpy reference, driven by Tests/RealModels/check-llm.sh, which
  /// tokenizes the text and writes a plan (JSON) whose path is in `QENGINE_LLM_CHECK`.
  /// Release only: a 135M model in a debug build takes minutes.
  @Suite struct LLMRealModelTests {
    struct Plan: Decodable {
      var model: String
      var referenceTokens: [Int]
      var referenceLogits: String
      var perplexityTokens: [Int]
      var context: Int
      var windows: Int
      var referencePerplexity: Double
      var generateTokens: Int

      enum CodingKeys: String, CodingKey {
        case model, context, windows
        case referenceTokens = "reference_tokens"
        case referenceLogits = "reference_logits"
        case perplexityTokens = "perplexity_tokens"
        case referencePerplexity = "reference_perplexity"
        case generateTokens = "generate_tokens"
      }
    }

    static let planPath = ProcessInfo.processInfo.environment["QENGINE_LLM_CHECK"]

    @Test(.enabled(if: planPath != nil))
    func realModelMatchesTheReference() throws {
      let plan = try JSONDecoder().decode(
        Plan.self, from: try Data(contentsOf: URL(fileURLWithPath: try #require(Self.planPath))))
      let clock = ContinuousClock()
      var start = clock.now
      let checkpoint = try Checkpoint.open(plan.model)
      let config = try ModelConfig(data: try #require(checkpoint.configData), location: plan.model)
      let model = try DecoderModel(source: checkpoint.source, config: config)
      print("model: \(plan.model), loaded in \(clock.now - start), weights \(model.residentWeightBytes >> 20) MiB")

      let referenceData = try Data(contentsOf: URL(fileURLWithPath: plan.referenceLogits))
      let reference = referenceData.withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
      let logits = try model.logits(tokens: plan.referenceTokens)
      #expect(logits.count == reference.count)
      let largest = reference.map(abs).max() ?? 1
      var worst: Float = 0
      for (ours, theirs) in zip(logits.elements, reference) { worst = max(worst, abs(ours - theirs)) }
      print("logits: max |ours - reference| = \(worst), max |reference| = \(largest), relative \(worst / largest)")
      #expect(worst <= 1e-3 * largest)

      start = clock.now
      let result = try model.perplexity(tokens: plan.perplexityTokens, context: plan.context, maxWindows: plan.windows)
      let seconds = Self.seconds(clock.now - start)
      let processed = result.windows * (plan.context - 1)
      print(
        "perplexity: ours \(String(format: "%.4f", result.perplexity)), reference \(String(format: "%.4f", plan.referencePerplexity)), \(result.scoredTokens) tokens in \(result.windows) windows, \(String(format: "%.2f", seconds)) s, \(String(format: "%.1f", Double(processed) / seconds)) tokens/s"
      )
      #expect(abs(result.perplexity - plan.referencePerplexity) <= 0.005 * plan.referencePerplexity)

      start = clock.now
      let generated = try model.generate(
        prompt: Array(plan.referenceTokens), maxTokens: plan.generateTokens)
      let generation = Self.seconds(clock.now - start)
      print(
        "generation: \(generated.count) tokens in \(String(format: "%.2f", generation)) s, \(String(format: "%.1f", Double(generated.count) / generation)) tokens/s: \(generated)"
      )
    }

    static func seconds(_ duration: Duration) -> Double {
      Double(duration.components.seconds) + Double(duration.components.attoseconds) * 1e-18
    }
  }
#endif
