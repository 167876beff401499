import Foundation
import QFormats
import Testing

@testable import QToolSupport

/// The streamed sums against the textbook formulas, at the sizes where loops and chunks split.
@Suite struct QDiffMetricsTests {
  /// A source over in-memory F32 tensors.
  final class MemorySource: TensorSource, @unchecked Sendable {
    let location = "memory"
    let tensors: [TensorInfo]
    let metadata: [String: String] = [:]
    let values: [String: [Float]]

    init(_ values: [String: [Float]]) {
      self.values = values
      tensors = values.keys.sorted().map { TensorInfo(name: $0, dtype: .f32, shape: [values[$0]?.count ?? 0]) }
    }

    func withRawBytes<R>(of name: String, _ body: (UnsafeRawBufferPointer) throws -> R) throws -> R {
      try (values[name] ?? []).withUnsafeBytes(body)
    }
  }

  func reference(_ a: [Float], _ b: [Float]) -> (rel: Double?, cos: Double?, maxAbs: Double, snr: Double?) {
    var dd = 0.0, aa = 0.0, bb = 0.0, ab = 0.0, largest = 0.0
    for (x, y) in zip(a.map(Double.init), b.map(Double.init)) {
      dd += (x - y) * (x - y)
      aa += x * x
      bb += y * y
      ab += x * y
      largest = max(largest, abs(x - y))
    }
    return (
      dd == 0 ? 0 : aa > 0 ? (dd / aa).squareRoot() : nil,
      aa > 0 && bb > 0 ? ab / (aa.squareRoot() * bb.squareRoot()) : nil, largest,
      dd > 0 && aa > 0 ? 10 * log10(aa / dd) : nil
    )
  }

  func near(_ x: Double?, _ y: Double?) -> Bool {
    guard let x, let y else { return x == nil && y == nil }
    return abs(x - y) <= 1e-12 * max(abs(y), 1e-300)
  }

  @Test(arguments: [0, 1, 3, 4, 5, 7, 8, 63, 64, 65, 65535, 65536, 65537, 200_003])
  func sumsMatchTheFormulas(count: Int) throws {
    var generator = SystemRandomNumberGenerator()
    let a = (0..<count).map { _ in Float.random(in: -2...2, using: &generator) }
    let b = a.map { $0 + Float.random(in: -0.01...0.01, using: &generator) }
    let source = MemorySource(["a": a, "b": b])
    let info = TensorInfo(name: "a", dtype: .f32, shape: [count])
    let other = TensorInfo(name: "b", dtype: .f32, shape: [count])
    let outcome = try TensorComparison.compare(old: source, info, new: source, other)
    let want = reference(a, b)
    #expect(outcome.sums.count == count)
    #expect(near(outcome.sums.relativeL2, want.rel))
    #expect(near(outcome.sums.cosine, want.cos))
    #expect(outcome.sums.maxAbsDifference == want.maxAbs)
    #expect(near(outcome.sums.snrDecibels, want.snr))
    #expect(outcome.bitIdentical == (count == 0))

    let same = try TensorComparison.compare(old: source, info, new: source, info)
    #expect(same.bitIdentical)
    #expect(same.sums.relativeL2 == 0)
    #expect(same.oldHash == same.newHash)
    #expect(try TensorComparison.hash(of: info, in: source) == same.oldHash)
  }

  @Test func nonFinitePairsAreCountedAndLeftOut() throws {
    let a: [Float] = [1, .nan, 3, 4, .infinity, 6, 7, 8, 9]
    let b: [Float] = [1, 2, 3, 5, .infinity, 6, 7, 8, 9]
    let source = MemorySource(["a": a, "b": b])
    let outcome = try TensorComparison.compare(
      old: source, TensorInfo(name: "a", dtype: .f32, shape: [9]),
      new: source, TensorInfo(name: "b", dtype: .f32, shape: [9]))
    #expect(outcome.sums.nonFinite == 2)
    #expect(outcome.sums.count == 7)
    let finite = [0, 2, 3, 5, 6, 7, 8]
    let want = reference(finite.map { a[$0] }, finite.map { b[$0] })
    // The finite pairs are summed apart, but the tensor's metrics are not numbers: its
    // difference from the other is not known.
    #expect(near(outcome.sums.finitePairsOnly.relativeL2, want.rel))
    #expect(outcome.sums.maxAbsDifference == 1)
    #expect(outcome.sums.relativeL2?.isNaN == true)
    #expect(outcome.sums.cosine?.isNaN == true)
    #expect(outcome.sums.snrDecibels?.isNaN == true)
    #expect(outcome.sums.largestDifference.isNaN)
  }

  @Test func zeroOldTensorHasNoRelativeError() {
    var sums = DifferenceSums()
    let a: [Float] = [0, 0]
    let b: [Float] = [1, 0]
    a.withUnsafeBufferPointer { x in b.withUnsafeBufferPointer { y in sums.add(old: x, new: y) } }
    #expect(sums.relativeL2 == nil)
    #expect(sums.cosine == nil)
    #expect(sums.snrDecibels == nil)
  }
}

@Suite struct QDiffMatchingTests {
  func infos(_ names: [String]) -> [TensorInfo] {
    names.map { TensorInfo(name: $0, dtype: .f32, shape: [4]) }
  }

  @Test func layerOffsetIsARenumbering() {
    let old = infos((0..<3).flatMap { ["m.layers.\($0).a", "m.layers.\($0).b"] })
    let new = infos((1..<4).flatMap { ["m.layers.\($0).a", "m.layers.\($0).b"] })
    var oldHashes: [String: UInt64] = [:]
    var newHashes: [String: UInt64] = [:]
    for i in 0..<3 {
      for m in ["a", "b"] {
        let h = UInt64(i * 10 + (m == "a" ? 1 : 2))
        oldHashes["m.layers.\(i).\(m)"] = h
        newHashes["m.layers.\(i + 1).\(m)"] = h
      }
    }
    let matching = DiffMatching.match(old: old, new: new, oldHashes: oldHashes, newHashes: newHashes)
    #expect(matching.layerMoves.map { [$0.old, $0.new] } == [[0, 1], [1, 2], [2, 3]])
    #expect(matching.pairs.allSatisfy { $0.reason == .layerRenumbering })
    #expect(matching.removed.isEmpty && matching.added.isEmpty)
  }

  @Test func differentContentUnderTheSameNameStaysAPair() {
    let names = ["m.layers.0.a", "m.layers.1.a"]
    let matching = DiffMatching.match(
      old: infos(names), new: infos(names), oldHashes: ["m.layers.0.a": 1, "m.layers.1.a": 2],
      newHashes: ["m.layers.0.a": 3, "m.layers.1.a": 4])
    #expect(matching.layerMoves.isEmpty)
    #expect(matching.pairs.map(\.reason) == [.sameName, .sameName])
  }

  @Test func prefixRenamesNeedTheSameShapeAndMoreThanAnIndex() {
    let old = infos(["model.norm.weight", "model.layers.0.x.weight", "lm_head.weight"])
    var new = infos(["language_model.model.norm.weight", "model.layers.5.x.weight"])
    new.append(TensorInfo(name: "language_model.lm_head.weight", dtype: .f32, shape: [8]))
    let matching = DiffMatching.match(old: old, new: new, oldHashes: [:], newHashes: [:])
    #expect(matching.pairs.map { [$0.old.name, $0.new.name] } == [["model.norm.weight", "language_model.model.norm.weight"]])
    #expect(matching.removed.map(\.name) == ["model.layers.0.x.weight", "lm_head.weight"])
  }
}
