import QCompute
import Testing

@Suite struct SimilarityLayerMappingTests {
  /// Every strictly increasing map from `n` rows into `m` columns, by recursion.
  private func allIncreasingMaps(_ n: Int, _ m: Int, from start: Int = 0) -> [[Int]] {
    if n == 0 { return [[]] }
    guard start < m else { return [] }
    var maps: [[Int]] = []
    for first in start..<m {
      for rest in allIncreasingMaps(n - 1, m, from: first + 1) { maps.append([first] + rest) }
    }
    return maps
  }

  @Test(arguments: [(1, 1), (1, 5), (2, 2), (2, 6), (3, 7), (4, 4), (4, 9), (5, 8), (6, 10), (7, 8)])
  func matchesBruteForce(shallow: Int, deep: Int) throws {
    var random = SeededGenerator(seed: UInt64(shallow * 100 + deep))
    for _ in 0..<20 {
      let scores: Matrix<Double> = random.matrix(shallow, deep)
      var best = -Double.infinity
      var bestMap: [Int] = []
      for map in allIncreasingMaps(shallow, deep) {
        let total = map.enumerated().reduce(0) { $0 + scores[$1.offset, $1.element] }
        if total > best {
          best = total
          bestMap = map
        }
      }
      #expect(LayerMapping.strictlyIncreasing(scores) == bestMap)

      // The public entry point in both orientations: old deeper, and new deeper.
      let newShallower = LayerMapping.orderPreserving(scores.transposed())
      #expect(newShallower == bestMap.map { Optional($0) })
      let newDeeper = LayerMapping.orderPreserving(scores)
      #expect(newDeeper.count == deep)
      #expect(newDeeper.compactMap { $0 } == Array(0..<shallow))
      for (old, new) in bestMap.enumerated() { #expect(newDeeper[new] == old) }
    }
  }

  @Test func equalDepthIsTheIdentityAndEmptyIsEmpty() {
    var random = SeededGenerator(seed: 9)
    let scores: Matrix<Double> = random.matrix(6, 6)
    #expect(LayerMapping.orderPreserving(scores) == (0..<6).map { Optional($0) })
    #expect(LayerMapping.orderPreserving(Matrix(rows: 0, columns: 3)) == [nil, nil, nil])
    #expect(LayerMapping.orderPreserving(Matrix(rows: 3, columns: 0)) == [])
  }

  @Test func modelWithOneLayerRemovedMapsAroundTheGap() throws {
    // Residual-stream-like activations: each layer adds a little to the one before.
    var random = SeededGenerator(seed: 77)
    var layers: [Matrix<Double>] = [random.matrix(48, 16)]
    for _ in 1..<8 {
      var next = layers[layers.count - 1]
      let update: Matrix<Double> = random.matrix(48, 16)
      next.withUnsafeMutableBufferPointer { buffer in
        update.withUnsafeBufferPointer { delta in
          for index in buffer.indices { buffer[index] += 0.8 * delta[index] }
        }
      }
      layers.append(next)
    }
    let removed = 5
    var new = layers
    new.remove(at: removed)
    let cka = try CKAMatrix.fromActivations(old: layers, new: new, batchSize: 16)
    let map = LayerMapping.orderPreserving(cka)
    #expect(map == (0..<8).filter { $0 != removed }.map { Optional($0) })
  }
}

@Suite struct SimilarityHungarianTests {
  private func permutations(_ items: [Int]) -> [[Int]] {
    if items.count <= 1 { return [items] }
    return items.indices.flatMap { index in
      var rest = items
      let head = rest.remove(at: index)
      return permutations(rest).map { [head] + $0 }
    }
  }

  /// The best total by brute force: the smaller side permuted over every choice of the larger.
  private func bruteForce(_ scores: Matrix<Double>) -> Double {
    let transposed = scores.rows > scores.columns
    let s = transposed ? scores.transposed() : scores
    var best = -Double.infinity
    // Injective maps rows -> columns: permutations of column subsets, via permuting all columns.
    for perm in permutations(Array(0..<s.columns)) {
      let total = (0..<s.rows).reduce(0) { $0 + s[$1, perm[$1]] }
      best = max(best, total)
    }
    return best
  }

  @Test(arguments: [(1, 1), (2, 2), (3, 3), (4, 4), (5, 5), (6, 6), (7, 7), (2, 5), (5, 2), (3, 7), (7, 4), (1, 6)])
  func matchesBruteForce(rows: Int, columns: Int) {
    var random = SeededGenerator(seed: UInt64(rows * 31 + columns))
    for _ in 0..<5 {
      let scores: Matrix<Double> = random.matrix(rows, columns)
      let assignment = Hungarian.maximize(scores)
      #expect(assignment.count == rows)
      let used = assignment.compactMap { $0 }
      #expect(used.count == min(rows, columns))
      #expect(Set(used).count == used.count, "one-to-one")
      let total = Hungarian.total(scores, assignment: assignment)
      #expect(abs(total - bruteForce(scores)) <= 1e-12)
    }
  }

  @Test(arguments: ["1x1", "1x4", "4x1", "3x5", "5x3", "6x6", "8x8", "10x7", "7x10", "16x16"])
  func matchesScipy(shape: String) throws {
    let fixtures = try SimilarityFixtures.shared()
    let scores: Matrix<Double> = try fixtures.matrix("hungarian.\(shape).scores")
    let expected = try fixtures.vector("hungarian.\(shape).assignment").map {
      $0 < 0 ? nil : Int($0)
    }
    let assignment = Hungarian.maximize(scores)
    #expect(assignment == expected)
    #expect(
      abs(Hungarian.total(scores, assignment: assignment)
        - (try fixtures.scalar("hungarian.\(shape).total"))) <= 1e-12)
  }

  @Test func emptyAndNonFiniteScores() throws {
    #expect(Hungarian.maximize(Matrix(rows: 0, columns: 4)) == [])
    #expect(Hungarian.maximize(Matrix(rows: 3, columns: 0)) == [nil, nil, nil])
    let scores = try Matrix<Double>([[.nan, 0.2], [0.9, .infinity]])
    // The NaN and infinite cells count as worst, so the finite pairs win.
    #expect(Hungarian.maximize(scores) == [1, 0])
  }
}
