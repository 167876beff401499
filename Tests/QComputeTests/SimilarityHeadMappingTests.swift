import QCompute
import Testing

@Suite struct SimilarityHeadMappingTests {
  @Test(arguments: ["gqa", "shrink"])
  func matchesExplicitDescriptors(name: String) throws {
    let fixtures = try SimilarityFixtures.shared()
    let shape = try fixtures.vector("heads.\(name).shape").map { Int($0) }
    func weights(_ side: String) throws -> [Matrix<Double>] {
      try ["q", "k", "v", "o"].map { try fixtures.matrix("heads.\(name).\(side).\($0)") }
    }
    let (old, new) = (try weights("old"), try weights("new"))
    let result = try HeadMapping.map(
      oldQ: old[0], oldK: old[1], oldV: old[2], oldO: old[3],
      newQ: new[0], newK: new[1], newV: new[2], newO: new[3],
      heads: (shape[0], shape[4]), kvHeads: (shape[1], shape[5]),
      transfer: try fixtures.matrix("heads.\(name).transfer"))
    expectClose(
      result.similarity, try fixtures.matrix("heads.\(name).similarity"), tolerance: 1e-12,
      "similarity")
    let expected = try fixtures.vector("heads.\(name).assignment").map { $0 < 0 ? nil : Int($0) }
    #expect(result.oldToNew == expected)
    for (a, b) in result.oldToNew.enumerated() {
      if let b { #expect(result.newToOld[b] == a) }
    }
  }

  /// Old attention weights and a copy whose heads are permuted group-wise (KV groups by `groups`,
  /// query heads inside each group by `inGroup`).
  private func permutedCopy(
    heads: Int, kvHeads: Int, headDim: Int, hidden: Int, groups: [Int], inGroup: [Int], seed: UInt64
  ) -> (old: [Matrix<Float>], new: [Matrix<Float>], newHeadFromOld: [Int]) {
    var random = SeededGenerator(seed: seed)
    let q: Matrix<Float> = random.matrix(heads * headDim, hidden)
    let k: Matrix<Float> = random.matrix(kvHeads * headDim, hidden)
    let v: Matrix<Float> = random.matrix(kvHeads * headDim, hidden)
    let o: Matrix<Float> = random.matrix(hidden, heads * headDim)
    let perGroup = heads / kvHeads
    // New head b = old head source[b].
    var source = [Int](repeating: 0, count: heads)
    for g in 0..<kvHeads {
      for s in 0..<perGroup { source[g * perGroup + s] = groups[g] * perGroup + inGroup[s] }
    }
    var newQ = q
    var newO = o
    var newK = k
    var newV = v
    for b in 0..<heads {
      for r in 0..<headDim {
        for c in 0..<hidden {
          newQ[b * headDim + r, c] = q[source[b] * headDim + r, c]
          newO[c, b * headDim + r] = o[c, source[b] * headDim + r]
        }
      }
    }
    for g in 0..<kvHeads {
      for r in 0..<headDim {
        for c in 0..<hidden {
          newK[g * headDim + r, c] = k[groups[g] * headDim + r, c]
          newV[g * headDim + r, c] = v[groups[g] * headDim + r, c]
        }
      }
    }
    var newHeadFromOld = [Int](repeating: 0, count: heads)
    for (b, a) in source.enumerated() { newHeadFromOld[a] = b }
    return ([q, k, v, o], [newQ, newK, newV, newO], newHeadFromOld)
  }

  @Test(arguments: [(8, 8), (8, 2), (6, 3), (4, 1)])
  func recoversPermutedHeads(heads: Int, kvHeads: Int) throws {
    let perGroup = heads / kvHeads
    let groups = Array((0..<kvHeads).reversed())
    let inGroup = Array((0..<perGroup).reversed())
    let (old, new, expected) = permutedCopy(
      heads: heads, kvHeads: kvHeads, headDim: 4, hidden: 16, groups: groups, inGroup: inGroup,
      seed: UInt64(heads * 10 + kvHeads))
    let result = try HeadMapping.map(
      oldQ: old[0], oldK: old[1], oldV: old[2], oldO: old[3],
      newQ: new[0], newK: new[1], newV: new[2], newO: new[3],
      heads: (heads, heads), kvHeads: (kvHeads, kvHeads))
    #expect(result.oldToNew == expected.map { Optional($0) })
    for (a, b) in expected.enumerated() {
      #expect(abs(result.similarity[a, b] - 1) <= 1e-5)
    }
  }

  @Test func gqaAgainstItsRepeatedMHAAndARectangularTransfer() throws {
    var random = SeededGenerator(seed: 5)
    let (heads, kvHeads, headDim, hidden, newHidden) = (6, 2, 3, 10, 7)
    let q: Matrix<Double> = random.matrix(heads * headDim, hidden)
    let k: Matrix<Double> = random.matrix(kvHeads * headDim, hidden)
    let v: Matrix<Double> = random.matrix(kvHeads * headDim, hidden)
    let o: Matrix<Double> = random.matrix(hidden, heads * headDim)
    // New = old moved by a transfer into a 7-wide hidden space, with K/V repeated to MHA.
    let transfer: Matrix<Double> = random.matrix(hidden, newHidden)
    var repeatedK = Matrix<Double>(rows: heads * headDim, columns: hidden)
    var repeatedV = repeatedK
    for h in 0..<heads {
      for r in 0..<headDim {
        for c in 0..<hidden {
          repeatedK[h * headDim + r, c] = k[(h / (heads / kvHeads)) * headDim + r, c]
          repeatedV[h * headDim + r, c] = v[(h / (heads / kvHeads)) * headDim + r, c]
        }
      }
    }
    let result = try HeadMapping.map(
      oldQ: q, oldK: k, oldV: v, oldO: o,
      newQ: try q.matmul(transfer), newK: try repeatedK.matmul(transfer),
      newV: try repeatedV.matmul(transfer), newO: try transfer.matmul(o, transposeSelf: true),
      heads: (heads, heads), kvHeads: (kvHeads, heads), transfer: transfer)
    #expect(result.oldToNew == (0..<heads).map { Optional($0) })
    for h in 0..<heads { #expect(abs(result.similarity[h, h] - 1) <= 1e-10) }
  }

  @Test func rejectsShapesThatDoNotFit() {
    let q = Matrix<Float>(rows: 8, columns: 4)
    let k = Matrix<Float>(rows: 4, columns: 4)
    let o = Matrix<Float>(rows: 4, columns: 8)
    #expect(throws: ComputeError.self) {
      try HeadMapping.map(
        oldQ: q, oldK: k, oldV: k, oldO: o, newQ: q, newK: k, newV: k, newO: o,
        heads: (3, 4), kvHeads: (1, 2))
    }
    #expect(throws: ComputeError.self) {
      try HeadMapping.map(
        oldQ: q, oldK: k, oldV: k, oldO: o, newQ: q, newK: k, newV: k, newO: o,
        heads: (4, 4), kvHeads: (2, 2), transfer: Matrix(rows: 3, columns: 4))
    }
  }
}
