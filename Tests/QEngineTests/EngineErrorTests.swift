import Testing
@testable import QEngine

@Suite struct EngineErrorTests {
  @Test func messagesNameTheTensor() {
    let error = EngineError.missingTensor(location: "m.safetensors", tensor: "lm_head.weight")
    #expect(error.description == "m.safetensors: tensor 'lm_head.weight' is missing")
  }
}
