import Testing

@testable import QEngine

/// `generate`'s `promptProcessed` marks the end of prompt processing: it runs once, when the
/// first new token has been chosen, and does not change what is generated.
@Suite struct LLMGenerationTimingTests {
  @Test(arguments: LLMFixtures.cases.filter { $0.name != "tiny-llama-dynamic" }.prefix(2))
  func promptProcessedRunsOnceAfterTheFirstToken(_ testCase: LLMFixtures.Case) throws {
    let model = try LLMFixtures.model(testCase)
    var calls = 0
    let generated = try model.generate(prompt: testCase.prompt, maxTokens: testCase.generated.count) {
      calls += 1
    }
    #expect(calls == 1)
    #expect(generated == testCase.generated)
    var stoppedCalls = 0
    let stopped = try model.generate(
      prompt: testCase.prompt, maxTokens: testCase.generated.count, eos: [testCase.generated[0]]
    ) { stoppedCalls += 1 }
    #expect(stopped == [testCase.generated[0]])
    #expect(stoppedCalls == 1)
  }
}
