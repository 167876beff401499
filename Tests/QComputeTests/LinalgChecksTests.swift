import Testing

@testable import QCompute

@Suite struct LinalgChecksTests {
  @Test func dimensionsBeyondInt32AreRejected() throws {
    #expect(try blasInt(Int(Int32.max), "gemm") == Int32.max)
    #expect(throws: ComputeError.dimensionTooLarge(operation: "gemm", value: 1 << 31)) {
      try blasInt(1 << 31, "gemm")
    }
  }

  @Test func workspaceSizesRoundUp() throws {
    // 16777217 is not a Float; the query reports 16777216, which must not be taken as is.
    #expect(try workspaceLength(Float(16_777_217), "svd") > 16_777_216)
    #expect(try workspaceLength(Double(0), "svd") == 1)
    #expect(try workspaceLength(Double(100), "svd") >= 100)
    #expect(throws: ComputeError.self) { try workspaceLength(Double(1e10), "svd") }
  }

  @Test func errorMessagesCarryContext() {
    let notPD = ComputeError.notPositiveDefinite(operation: "cholesky", order: 3)
    #expect(
      notPD.description == "cholesky: matrix is not positive definite (leading minor of order 3)")
    let rank = ComputeError.rankDeficient(operation: "leastSquares", column: 2)
    #expect(rank.description.contains("column 2"))
    let large = ComputeError.dimensionTooLarge(operation: "gemm", value: 1 << 31)
    #expect(large.description.contains("2147483648"))
  }

  @Test func lapackErrorsNameTheTypedRoutine() {
    #expect(throws: ComputeError.lapack(routine: "dgesdd", info: -4)) {
      try checkLapack(-4, "gesdd", Double.self)
    }
    #expect(throws: ComputeError.lapack(routine: "sgesdd", info: 1)) {
      try checkLapack(1, "gesdd", Float.self)
    }
  }
}
