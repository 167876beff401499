import QCompute
import Testing

@Suite struct SimilarityCKATests {
  @Test(arguments: ["n4", "n20", "n20b8", "n65b64", "n64b7"])
  func matchesNumpyEstimator(name: String) throws {
    let fixtures = try SimilarityFixtures.shared()
    let x: Matrix<Double> = try fixtures.matrix("cka.\(name).x")
    let y: Matrix<Double> = try fixtures.matrix("cka.\(name).y")
    let batch = Int(try fixtures.scalar("cka.\(name).batch"))
    let expected = try fixtures.scalar("cka.\(name).value")

    let matrix = try CKAMatrix.fromActivations(old: [x], new: [y], batchSize: batch)
    #expect(abs(matrix[0, 0] - expected) <= 1e-12, "\(matrix[0, 0]) vs \(expected)")
    let asFloat = try CKAMatrix.fromActivations(
      old: [x.converting(to: Float.self)], new: [y.converting(to: Float.self)], batchSize: batch)
    #expect(abs(asFloat[0, 0] - expected) <= 1e-5, "float \(asFloat[0, 0]) vs \(expected)")

    // The pairwise accumulator over the same minibatches.
    var accumulator = MinibatchCKA()
    var start = 0
    while start < x.rows {
      let end = min(start + batch, x.rows)
      if end - start >= 4 {
        try accumulator.add(x: x.rows(start..<end), y: y.rows(start..<end))
      }
      start = end
    }
    #expect(abs(accumulator.value - expected) <= 1e-12)
    if batch >= x.rows {
      #expect(abs(try LinearCKA.unbiased(x, y) - expected) <= 1e-12)
    }
  }

  @Test func allPairsFromActivationsMatchNumpy() throws {
    let fixtures = try SimilarityFixtures.shared()
    let old: [Matrix<Double>] = try (0..<3).map { try fixtures.matrix("matrix.act.old\($0)") }
    let new: [Matrix<Double>] = try (0..<4).map { try fixtures.matrix("matrix.act.new\($0)") }
    let expected: Matrix<Double> = try fixtures.matrix("matrix.act.expected")
    let matrix = try CKAMatrix.fromActivations(old: old, new: new, batchSize: 8)
    expectClose(matrix, expected, tolerance: 1e-12, "CKA matrix")
  }

  @Test func allPairsFromWeightsMatchNumpy() throws {
    let fixtures = try SimilarityFixtures.shared()
    let old: [Matrix<Double>] = try (0..<2).map { try fixtures.matrix("matrix.w.old\($0)") }
    let new: [Matrix<Double>] = try (0..<3).map { try fixtures.matrix("matrix.w.new\($0)") }
    let transfer: Matrix<Double> = try fixtures.matrix("matrix.w.transfer")
    let expected: Matrix<Double> = try fixtures.matrix("matrix.w.expected")
    let matrix = try CKAMatrix.fromWeights(old: old, new: new, transfer: transfer)
    expectClose(matrix, expected, tolerance: 1e-12, "weight CKA matrix")
    #expect(throws: ComputeError.self) { try CKAMatrix.fromWeights(old: old, new: new) }
  }

  @Test(arguments: [4, 7, 8, 63, 64, 65])
  func invariantToOrthogonalTransformAndScaling(examples: Int) throws {
    var random = SeededGenerator(seed: UInt64(examples))
    let x: Matrix<Double> = random.matrix(examples, 6)
    let rotation = try (random.matrix(6, 6) as Matrix<Double>).thinQR().q
    var transformed = try x.matmul(rotation)
    transformed.withUnsafeMutableBufferPointer { buffer in
      for index in buffer.indices { buffer[index] *= 3.5 }
    }
    #expect(abs(try LinearCKA.unbiased(x, x) - 1) <= 1e-12)
    #expect(abs(try LinearCKA.unbiased(x, transformed) - 1) <= 1e-10)
    // Unrelated representations stay far from 1.
    if examples >= 63 {
      let y: Matrix<Double> = random.matrix(examples, 6)
      #expect(abs(try LinearCKA.unbiased(x, y)) < 0.5)
    }
  }

  @Test func rejectsTooFewOrMismatchedExamples() throws {
    let three = Matrix<Double>(rows: 3, columns: 2)
    let five = Matrix<Double>(rows: 5, columns: 2)
    #expect(throws: ComputeError.self) { try LinearCKA.unbiased(three, three) }
    #expect(throws: ComputeError.self) { try LinearCKA.unbiased(five, three) }
    #expect(throws: ComputeError.self) {
      try CKAMatrix.fromActivations(old: [five], new: [three])
    }
    // A constant representation has no variation: NaN, not a crash.
    #expect(try LinearCKA.unbiased(five, five).isNaN)
  }
}

extension Matrix {
  func converting<Target: LinalgScalar>(to _: Target.Type) -> Matrix<Target> {
    var result = Matrix<Target>(rows: rows, columns: columns)
    let source = elements
    result.withUnsafeMutableBufferPointer { target in
      for index in target.indices { target[index] = Target(source[index]) }
    }
    return result
  }

  func rows(_ range: Range<Int>) -> Matrix {
    var result = Matrix(rows: range.count, columns: columns)
    for i in range {
      for j in 0..<columns { result[i - range.lowerBound, j] = self[i, j] }
    }
    return result
  }
}
