import Foundation
import QCompute
import QFormats
import Testing

/// Random matrices and the LoRASuite transforms written out in numpy by
/// `Fixtures/make_lora_fixtures.py` from the paper's formulas.
private struct LoRAFixture {
  struct Expected: Decodable {
    var shape: [Int]
    var values: [Double]
  }
  struct Meta: Decodable {
    var headDim: [Int]
    var heads: [Int]
    var kvHeads: [Int]
    var rank: Int
    var newToOld: [Int?]
    var expected: [String: Expected]
  }

  let file: SafetensorsFile
  let meta: Meta

  init() throws {
    let directory = URL(fileURLWithPath: #filePath)
      .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
      .appendingPathComponent("Fixtures/lora")
    file = try SafetensorsFile(path: directory.appendingPathComponent("transforms.safetensors").path)
    meta = try JSONDecoder().decode(
      Meta.self, from: Data(contentsOf: directory.appendingPathComponent("transforms.json")))
  }

  func matrix(_ name: String) throws -> Matrix<Double> {
    let info = try #require(file.info(named: name))
    return try Matrix(
      rows: info.shape[0], columns: info.shape[1], elements: try file.floats(of: name).map(Double.init))
  }

  func factors(_ name: String) throws -> LoRAFactors {
    try LoRAFactors(a: try matrix(name + "_A"), b: try matrix(name + "_B"))
  }

  func expected(_ name: String) throws -> Matrix<Double> {
    let entry = try #require(meta.expected[name])
    return try Matrix(rows: entry.shape[0], columns: entry.shape[1], elements: entry.values)
  }
}

private func expectClose(
  _ actual: Matrix<Double>, _ expected: Matrix<Double>, relative: Double, _ what: String
) throws {
  #expect(actual.rows == expected.rows && actual.columns == expected.columns, "\(what) shape")
  guard actual.rows == expected.rows, actual.columns == expected.columns else { return }
  var difference = Matrix<Double>(rows: actual.rows, columns: actual.columns)
  for i in 0..<actual.rows {
    for j in 0..<actual.columns { difference[i, j] = actual[i, j] - expected[i, j] }
  }
  let error = difference.frobeniusNorm / max(expected.frobeniusNorm, 1e-300)
  #expect(error < relative, "\(what): relative error \(error)")
}

@Suite struct LoRATransferTests {
  @Test(arguments: [false, true])
  func rowBlocksMatchNumpy(normalized: Bool) throws {
    let f = try LoRAFixture()
    let suffix = normalized ? "normalized" : "paper"
    let transfer = try f.matrix("Wx")
    let headDim = (old: f.meta.headDim[0], new: f.meta.headDim[1])
    let q = try LoRATransfer.rowBlocks(
      try f.factors("q"), oldWeight: try f.matrix("q_old"), newWeight: try f.matrix("q_new"),
      headDim: headDim, queriesPerBlock: (1, 1), newToOld: f.meta.newToOld, transfer: transfer,
      normalized: normalized)
    try expectClose(try q.product(), try f.expected("q_\(suffix)"), relative: 1e-9, "q \(suffix)")
    let k = try LoRATransfer.rowBlocks(
      try f.factors("k"), oldWeight: try f.matrix("k_old"), newWeight: try f.matrix("k_new"),
      headDim: headDim,
      queriesPerBlock: (f.meta.heads[0] / f.meta.kvHeads[0], f.meta.heads[1] / f.meta.kvHeads[1]),
      newToOld: f.meta.newToOld, transfer: transfer, normalized: normalized)
    try expectClose(try k.product(), try f.expected("k_\(suffix)"), relative: 1e-9, "k \(suffix)")
  }

  @Test(arguments: [false, true])
  func columnBlocksMatchNumpy(normalized: Bool) throws {
    let f = try LoRAFixture()
    let suffix = normalized ? "normalized" : "paper"
    let o = try LoRATransfer.columnBlocks(
      try f.factors("o"), oldWeight: try f.matrix("o_old"), newWeight: try f.matrix("o_new"),
      headDim: (f.meta.headDim[0], f.meta.headDim[1]), newToOld: f.meta.newToOld,
      transfer: try f.matrix("Wx"), normalized: normalized)
    try expectClose(try o.product(), try f.expected("o_\(suffix)"), relative: 1e-9, "o \(suffix)")
  }

  @Test func mlpTransformsMatchNumpy() throws {
    let f = try LoRAFixture()
    let transfer = try f.matrix("Wx")
    let up = try LoRATransfer.expanding(
      try f.factors("up"), oldWeight: try f.matrix("up_old"), newWeight: try f.matrix("up_new"),
      transfer: transfer)
    try expectClose(try up.product(), try f.expected("up_paper"), relative: 1e-8, "up")
    let down = try LoRATransfer.contracting(
      try f.factors("down"), oldWeight: try f.matrix("down_old"),
      newWeight: try f.matrix("down_new"), transfer: transfer)
    try expectClose(try down.product(), try f.expected("down_paper"), relative: 1e-8, "down")
  }

  /// The normalized MLP against its formula with an explicit pseudo-inverse from a full SVD:
  /// `M = X_n pinv(X_o W_x)`, up/gate `(A_o W_x, M B_o)`, down `(A_o Mᵀ, W_xᵀ B_o)`. Sizes cover
  /// full row rank (the Cholesky path) and intermediate sizes above `3 × hidden` (least squares).
  @Test(arguments: [
    (1, 1, 1, 1, 1), (7, 8, 3, 4, 2), (10, 9, 3, 4, 2), (65, 64, 22, 22, 8), (64, 63, 21, 21, 8),
  ])
  func normalizedMLPMatchesExplicitPseudoInverse(
    oldInner: Int, newInner: Int, oldHidden: Int, newHidden: Int, rank: Int
  ) throws {
    var generator = SeededGenerator(seed: UInt64(oldInner * 7919 + newInner * 31 + rank))
    func random(_ rows: Int, _ columns: Int) -> Matrix<Double> { generator.matrix(rows, columns) }
    let old = [random(oldInner, oldHidden), random(oldInner, oldHidden), random(oldInner, oldHidden)]
    let new = [random(newInner, newHidden), random(newInner, newHidden), random(newInner, newHidden)]
    let transfer = random(oldHidden, newHidden)
    let up = try LoRAFactors(a: random(rank, oldHidden), b: random(oldInner, rank))
    let down = try LoRAFactors(a: random(rank, oldInner), b: random(oldHidden, rank))
    let moved = try LoRATransfer.normalizedMLP(
      [(up, .expanding), (down, .contracting)], old: old, new: new, transfer: transfer)

    // pinv(X') = V S⁺ Uᵀ with the usual relative cut-off.
    let xo = try LoRATransfer.hstack(try old.map { try Matrix.matmul($0, transfer) })
    let xn = try LoRATransfer.hstack(new)
    let svd = try xo.svd()
    let cutoff = (svd.singularValues.first ?? 0) * 1e-10
    var pinv = Matrix<Double>(rows: xo.columns, columns: xo.rows)
    for (k, sigma) in svd.singularValues.enumerated() where sigma > cutoff {
      for i in 0..<xo.columns {
        for j in 0..<xo.rows { pinv[i, j] += svd.vt[k, i] * svd.u[j, k] / sigma }
      }
    }
    let m = try Matrix.matmul(xn, pinv)
    let expectedUp = try Matrix.matmul(
      m, try Matrix.matmul(up.b, try Matrix.matmul(up.a, transfer)))
    let expectedDown = try Matrix.matmul(
      try Matrix.matmul(transfer, down.b, transposeA: true), try Matrix.matmul(down.a, m, transposeB: true))
    try expectClose(try moved[0].product(), expectedUp, relative: 1e-8, "up \(oldInner)")
    try expectClose(try moved[1].product(), expectedDown, relative: 1e-8, "down \(oldInner)")

    // Old == new with the identity transfer gives back the update when X has full row rank.
    if oldInner <= 3 * oldHidden {
      let same = try LoRATransfer.normalizedMLP(
        [(up, .expanding), (down, .contracting)], old: old, new: old, transfer: nil)
      try expectClose(try same[0].product(), try up.product(), relative: 1e-9, "up identity")
      try expectClose(try same[1].product(), try down.product(), relative: 1e-9, "down identity")
    }
  }

  /// The normalized maps give the identity when old and new weights are the same.
  @Test func normalizedMapsPreserveAnUpdateOnTheSameModel() throws {
    let f = try LoRAFixture()
    let identity = Matrix<Double>.identity(12)
    let q = try f.factors("q")
    let same = try LoRATransfer.rowBlocks(
      q, oldWeight: try f.matrix("q_old"), newWeight: try f.matrix("q_old"), headDim: (3, 3),
      queriesPerBlock: (1, 1), newToOld: [0, 1, 2, 3], transfer: identity, normalized: true)
    try expectClose(try same.product(), try q.product(), relative: 1e-9, "q identity")
    let paper = try LoRATransfer.rowBlocks(
      q, oldWeight: try f.matrix("q_old"), newWeight: try f.matrix("q_old"), headDim: (3, 3),
      queriesPerBlock: (1, 1), newToOld: [0, 1, 2, 3], transfer: identity, normalized: false)
    // The paper's T = W Wᵀ is not the identity: the same test must fail for it.
    var difference = try paper.product()
    let original = try q.product()
    for i in 0..<difference.rows {
      for j in 0..<difference.columns { difference[i, j] -= original[i, j] }
    }
    #expect(difference.frobeniusNorm / original.frobeniusNorm > 0.1)
  }

  /// QR + r × r SVD equals the rank-r truncation of the full SVD of B A.
  @Test(arguments: [(1, 1, 1), (7, 8, 3), (64, 63, 8), (65, 9, 8), (5, 40, 8)])
  func refactoringEqualsTruncatedSVD(rows: Int, columns: Int, rank: Int) throws {
    var generator = SeededGenerator(seed: UInt64(rows * 1000 + columns))
    let b: Matrix<Double> = generator.matrix(rows, rank)
    let a: Matrix<Double> = generator.matrix(rank, columns)
    let factors = try LoRAFactors(a: a, b: b)
    let product = try factors.product()
    let svd = try product.svd()
    var truncated = Matrix<Double>(rows: rows, columns: columns)
    for k in 0..<min(rank, svd.singularValues.count) {
      for i in 0..<rows {
        for j in 0..<columns { truncated[i, j] += svd.u[i, k] * svd.singularValues[k] * svd.vt[k, j] }
      }
    }
    for target in [rank, max(rank - 1, 1)] {
      let refactored = try factors.refactored(rank: target)
      #expect(refactored.a.rows == target && refactored.b.columns == target)
      var expected = Matrix<Double>(rows: rows, columns: columns)
      for k in 0..<min(target, svd.singularValues.count) {
        for i in 0..<rows {
          for j in 0..<columns {
            expected[i, j] += svd.u[i, k] * svd.singularValues[k] * svd.vt[k, j]
          }
        }
      }
      try expectClose(try refactored.product(), expected, relative: 1e-10, "rank \(target)")
      // Balanced factors: BᵀB = A Aᵀ = diag(S).
      let bGram = try Matrix.matmul(refactored.b, refactored.b, transposeA: true)
      let aGram = try Matrix.matmul(refactored.a, refactored.a, transposeB: true)
      try expectClose(bGram, aGram, relative: 1e-9, "balance")
    }
    try expectClose(try factors.refactored(rank: rank).product(), truncated, relative: 1e-10, "exact")
    #expect(abs(try factors.productNorm() - product.frobeniusNorm) <= 1e-9 * product.frobeniusNorm)
  }
}
