import Foundation
import QFormats
import Testing

@testable import QEngine

/// tiny-llama stores F16: its matrices stay 16-bit in memory, and the model computes what the
/// same model stored as Float32 (the widened values, exactly) computes, up to summation order.
@Suite struct LLMHalfWeightTests {
  /// The fixture with every tensor widened to Float32, in a temporary file the caller removes.
  static func widenedCopy(of source: SafetensorsFile) throws -> String {
    let plan = source.tensors.map { TensorInfo(name: $0.name, dtype: .f32, shape: $0.shape) }
    let path = FileManager.default.temporaryDirectory
      .appendingPathComponent("llm-f32-\(UUID().uuidString).safetensors").path
    let writer = try SafetensorsWriter(path: path, plan: plan, order: .asGiven)
    for info in source.tensors {
      try writer.append(name: info.name, bytes: try source.floats(of: info.name).withUnsafeBytes { [UInt8]($0) })
    }
    try writer.finish()
    return path
  }

  @Test func f16ModelStaysHalfAndMatchesItsFloatCopy() throws {
    let source = try LLMFixtures.source("tiny-llama")
    #expect(source.tensors.contains { $0.dtype == .f16 })
    let config = try LLMFixtures.config("tiny-llama/config.json")
    let path = try Self.widenedCopy(of: source)
    defer { try? FileManager.default.removeItem(atPath: path) }
    let half = try DecoderModel(source: source, config: config)
    let float = try DecoderModel(source: try SafetensorsFile(path: path), config: config)
    guard case .half = half.layers[0].query, case .dense = float.layers[0].query else {
      Issue.record("expected 16-bit weights from the F16 file and floats from the F32 copy")
      return
    }
    // Matrices at two bytes a value; norms stay Float32 in both.
    #expect(half.residentWeightBytes < float.residentWeightBytes * 6 / 10)
    // A prompt (tiles and BLAS) and decoding steps (the few-token product), against the floats.
    for tokens in [[1, 17, 200, 33, 4, 90, 91, 255, 0, 12], [5], [7, 8, 9]] {
      let ours = try half.logits(tokens: tokens).elements
      let reference = try float.logits(tokens: tokens).elements
      let largest = reference.map { abs($0) }.max() ?? 0
      for (a, b) in zip(ours, reference) { #expect(abs(a - b) <= 1e-4 * max(largest, 1)) }
    }
    #expect(try half.generate(prompt: [1, 2, 3], maxTokens: 6) == float.generate(prompt: [1, 2, 3], maxTokens: 6))
  }
}
