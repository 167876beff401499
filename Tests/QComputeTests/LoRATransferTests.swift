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

  @Test func hiddenTransferIsPinvTimesNewEmbeddings() throws {
    let f = try LoRAFixture()
    let fit = try LoRATransfer.hiddenTransfer(
      oldEmbeddings: try f.matrix("E_old"), newEmbeddings: try f.matrix("E_new"))
    try expectClose(fit.transfer, try f.expected("Wx_fit"), relative: 1e-9, "W_x")
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
    var generator = SplitMix(seed: UInt64(rows * 1000 + columns))
    let b = try Matrix(
      rows: rows, columns: rank, elements: (0..<(rows * rank)).map { _ in generator.normal() })
    let a = try Matrix(
      rows: rank, columns: columns, elements: (0..<(rank * columns)).map { _ in generator.normal() })
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

/// A small deterministic generator for test matrices.
private struct SplitMix {
  var state: UInt64
  init(seed: UInt64) { state = seed }
  mutating func next() -> UInt64 {
    state &+= 0x9E37_79B9_7F4A_7C15
    var z = state
    z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
    z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
    return z ^ (z >> 31)
  }
  mutating func normal() -> Double {
    let u1 = max(Double(next() >> 11) / Double(1 << 53), 1e-300)
    let u2 = Double(next() >> 11) / Double(1 << 53)
    return (-2 * log(u1)).squareRoot() * cos(2 * .pi * u2)
  }
}
