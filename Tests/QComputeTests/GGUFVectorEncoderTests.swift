import CKernels
import Testing

@testable import QCompute

/// Blocks that reach every branch of the Q8_0 and Q4_0 encoders: ties, signed zeros, NaN,
/// infinities, subnormals, halves to round, values at the range's ends.
private func edgeBlocks() -> [[Float]] {
  let zeros = [Float](repeating: 0, count: 32)
  var negativeZeros = [Float](repeating: -0.0, count: 32)
  negativeZeros[5] = 0
  var tie = zeros
  tie[3] = -2
  tie[9] = 2
  tie[20] = -2
  var nanBlock = (0..<32).map { Float($0) - 16 }
  nanBlock[0] = .nan
  nanBlock[31] = .nan
  let allNaN = [Float](repeating: .nan, count: 32)
  var infinite = (0..<32).map { Float($0) * 0.25 }
  infinite[7] = -.infinity
  infinite[8] = .infinity
  let subnormal = (0..<32).map { Float($0 - 16) * Float.leastNonzeroMagnitude }
  let tiny = (0..<32).map { Float($0 % 5) * 1e-39 }
  // With a largest magnitude of 127, Q8_0's scale is 1 and these sit on halves.
  var halves = (0..<32).map { Float($0) - 15.5 }
  halves[0] = 127
  let large = (0..<32).map { Float($0 - 16) * 1e37 }
  let huge = (0..<32).map { $0 % 2 == 0 ? Float.greatestFiniteMagnitude : -Float.greatestFiniteMagnitude / 3 }
  return [zeros, negativeZeros, tie, nanBlock, allNaN, infinite, subnormal, tiny, halves, large, huge]
}

/// Deterministic values with a heavy tail, so failures reproduce.
private func randomBlocks(count: Int, seed: UInt64) -> [Float] {
  var state = seed | 1
  func uniform() -> Float {
    state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
    return Float(state >> 40) / Float(1 << 24)
  }
  return (0..<(count * 32)).map { _ in
    let u = uniform() - 0.5
    return u * u * u * 40 + (uniform() - 0.5) * 0.1
  }
}

/// The first byte where the encodings differ, with both bytes; `nil` when they are equal.
private func firstDifference(_ a: [UInt8], _ b: [UInt8]) -> String? {
  guard a.count == b.count else { return "\(a.count) bytes against \(b.count)" }
  guard let index = a.indices.first(where: { a[$0] != b[$0] }) else { return nil }
  return "byte \(index): \(a[index]) against \(b[index])"
}

@Suite("GGUF Q8_0 and Q4_0 vector encoders against the scalar ones")
struct GGUFVectorEncoderTests {
  /// The vector encoders run only where the CPU has AVX2; elsewhere there is nothing to compare.
  static let vectorAvailable: Bool = {
    var byte: UInt8 = 0
    var value: Float = 0
    return qk_encode_q4_0(&value, 0, &byte) != 0
  }()

  @Test(.enabled(if: vectorAvailable, "no AVX2 on this CPU: the scalar encoders run"),
    arguments: [GGUFBlockType.q8_0, .q4_0], [0, 1, 2, 3, 63, 64, 65, 1_000])
  func randomBlocksMatch(type: GGUFBlockType, blocks: Int) throws {
    let values = randomBlocks(count: blocks, seed: UInt64(blocks) * 31 + 7)
    let vector = try values.withUnsafeBufferPointer { try GGUFBlocks.encode($0, type: type, vectorized: true) }
    let scalar = try values.withUnsafeBufferPointer { try GGUFBlocks.encode($0, type: type, vectorized: false) }
    #expect(vector.count == blocks * type.blockBytes)
    #expect(firstDifference(vector, scalar) == nil)
  }

  @Test(.enabled(if: vectorAvailable, "no AVX2 on this CPU: the scalar encoders run"),
    arguments: [GGUFBlockType.q8_0, .q4_0])
  func edgeBlocksMatch(type: GGUFBlockType) throws {
    for (index, block) in edgeBlocks().enumerated() {
      let vector = try block.withUnsafeBufferPointer { try GGUFBlocks.encode($0, type: type, vectorized: true) }
      let scalar = try block.withUnsafeBufferPointer { try GGUFBlocks.encode($0, type: type, vectorized: false) }
      #expect(firstDifference(vector, scalar) == nil, "edge block \(index)")
    }
  }

  /// The kernel itself: it claims a call only where it ran, and then writes every block.
  @Test(.enabled(if: vectorAvailable, "no AVX2 on this CPU: the scalar encoders run"))
  func kernelWritesEveryBlock() {
    let values = randomBlocks(count: 5, seed: 3)
    var out = [UInt8](repeating: 0xAB, count: 5 * 18 + 1)
    let ran = values.withUnsafeBufferPointer { input in
      out.withUnsafeMutableBufferPointer { qk_encode_q4_0(input.baseAddress, 5, $0.baseAddress) }
    }
    #expect(ran == 1)
    #expect(out.last == 0xAB)
    let scalar = try? values.withUnsafeBufferPointer { try GGUFBlocks.encode($0, type: .q4_0, vectorized: false) }
    #expect(firstDifference(Array(out.dropLast()), scalar ?? []) == nil)
  }
}
