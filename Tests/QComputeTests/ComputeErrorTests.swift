import Testing
@testable import QCompute

@Suite struct ComputeErrorTests {
  @Test func messagesNameTheRoutine() {
    #expect(ComputeError.lapack(routine: "spotrf", info: 3).description.contains("spotrf"))
  }
}
