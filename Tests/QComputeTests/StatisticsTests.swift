import Foundation
import Testing
@testable import QCompute

/// numpy's statistics of small arrays, made by `Fixtures/make_stats_fixtures.py`.
private struct StatisticsCase: Decodable, CustomTestStringConvertible {
  struct Expected: Decodable {
    var count: Int
    var finite_count: Int
    var nan_count: Int
    var inf_count: Int
    var zero_count: Int
    var zero_fraction: Double?
    var min: Double?
    var max: Double?
    var abs_max: Double?
    var mean: Double?
    var std: Double?
  }
  var name: String
  var bits: [UInt32]
  var expected: Expected

  var values: [Float] { bits.map(Float.init(bitPattern:)) }
  var testDescription: String { name }
}

private struct BigCase: Decodable {
  var count: Int
  var seed: UInt64
  var expected: StatisticsCase.Expected
}

private let statsFixtures = URL(fileURLWithPath: #filePath)
  .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
  .appendingPathComponent("Fixtures/stats")

private func loadCases() throws -> [StatisticsCase] {
  let data = try Data(contentsOf: statsFixtures.appendingPathComponent("cases.json"))
  return try JSONDecoder().decode([StatisticsCase].self, from: data)
}

private func close(_ a: Double?, _ b: Double?, relative: Double) -> Bool {
  switch (a, b) {
  case (nil, nil): return true
  case let (a?, b?):
    if a == b { return true }
    return abs(a - b) <= relative * Swift.max(abs(a), abs(b))
  default: return false
  }
}

private func check(_ s: TensorStatistics, _ e: StatisticsCase.Expected, relative: Double) {
  #expect(s.count == e.count)
  #expect(s.finiteCount == e.finite_count)
  #expect(s.nanCount == e.nan_count)
  #expect(s.infCount == e.inf_count)
  #expect(s.zeroCount == e.zero_count)
  #expect(close(s.zeroFraction, e.zero_fraction, relative: 1e-15))
  #expect(close(s.min.map(Double.init), e.min, relative: 0))
  #expect(close(s.max.map(Double.init), e.max, relative: 0))
  #expect(close(s.absMax.map(Double.init), e.abs_max, relative: 0))
  #expect(close(s.mean, e.mean, relative: relative), "mean \(String(describing: s.mean)) vs \(String(describing: e.mean))")
  #expect(close(s.std, e.std, relative: relative), "std \(String(describing: s.std)) vs \(String(describing: e.std))")
}

/// The generator the fixture script uses for its 10M-element array, element by element.
private func splitmixValue(_ i: Int, seed: UInt64) -> Float {
  var z = seed &+ UInt64(i) &* 0x9E37_79B9_7F4A_7C15
  z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
  z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
  z ^= z >> 31
  if i % 1_000_003 == 0 { return .nan }
  return Float(z >> 40) / 16_777_216 * 3 + 100
}

#if DEBUG
  private let bigFixtureNames = ["splitmix-1m.json"]
#else
  private let bigFixtureNames = ["splitmix-1m.json", "splitmix-10m.json"]
#endif

@Suite struct StatisticsTests {
  @Test(arguments: try loadCases())
  fileprivate func agreesWithNumpy(_ testCase: StatisticsCase) {
    let values = testCase.values
    let s = values.withUnsafeBufferPointer { TensorStatistics.compute($0) }
    check(s, testCase.expected, relative: 1e-12)
  }

  /// Any split into chunks, merged in any grouping, gives the statistics of the whole.
  @Test(arguments: try loadCases().filter { $0.bits.count >= 7 })
  fileprivate func chunksMergeToTheWhole(_ testCase: StatisticsCase) {
    let values = testCase.values
    for cut in [1, 3, 8, values.count / 2, values.count - 1] where cut <= values.count {
      let (left, right) = values.withUnsafeBufferPointer { buffer in
        var left = TensorStatistics()
        left.add(UnsafeBufferPointer(rebasing: buffer[..<cut]))
        var right = TensorStatistics()
        // The right part in uneven pieces to exercise streaming.
        var start = cut
        while start < buffer.count {
          let end = Swift.min(buffer.count, start + 5)
          right.add(UnsafeBufferPointer(rebasing: buffer[start..<end]))
          start = end
        }
        return (left, right)
      }
      check(TensorStatistics.merge(left, right), testCase.expected, relative: 1e-12)
      check(TensorStatistics.merge(right, left), testCase.expected, relative: 1e-12)
    }
  }

  /// No elements: counts are zero and every value statistic is `nil`, not NaN.
  @Test func emptyHasNoValues() {
    let s = [Float]().withUnsafeBufferPointer { TensorStatistics.compute($0) }
    #expect(s.count == 0)
    #expect(s.min == nil && s.max == nil && s.absMax == nil)
    #expect(s.mean == nil && s.std == nil && s.zeroFraction == nil)
    #expect(TensorStatistics.merge(s, s) == TensorStatistics())
  }

  /// The identity element leaves statistics unchanged on either side.
  @Test func mergingNothingChangesNothing() throws {
    let values: [Float] = [1, -2, 3.5, .nan, 0]
    let s = values.withUnsafeBufferPointer { TensorStatistics.compute($0) }
    #expect(TensorStatistics.merge(s, TensorStatistics()) == s)
    #expect(TensorStatistics.merge(TensorStatistics(), s) == s)
    #expect(try #require(s.mean) == 2.5 / 4)
  }

  /// Large arrays with a large mean: the parallel path agrees with numpy to 1e-6 relative
  /// (in practice far better), and matches the single-threaded streaming result. Debug builds
  /// take only the 1M case; the 10M case runs in release builds.
  @Test(arguments: bigFixtureNames)
  func largeArraysAgreeWithNumpy(_ fixture: String) throws {
    let data = try Data(contentsOf: statsFixtures.appendingPathComponent(fixture))
    let big = try JSONDecoder().decode(BigCase.self, from: data)
    let values = (0..<big.count).map { splitmixValue($0, seed: big.seed) }
    let parallel = values.withUnsafeBufferPointer { TensorStatistics.compute($0) }
    check(parallel, big.expected, relative: 1e-9)
    var streamed = TensorStatistics()
    values.withUnsafeBufferPointer { streamed.add($0) }
    check(streamed, big.expected, relative: 1e-9)
  }
}
