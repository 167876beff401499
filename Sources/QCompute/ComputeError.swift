/// Failures of the numeric layer, each naming the operation and what was wrong.
public enum ComputeError: Error, CustomStringConvertible, Equatable {
  /// Operand shapes that do not fit together.
  case shapeMismatch(operation: String, detail: String)
  /// A LAPACK routine reported failure through its `info` argument.
  case lapack(routine: String, info: Int32)
  /// A Cholesky factorisation met a leading minor (of the 1-based `order`) that is not positive.
  case notPositiveDefinite(operation: String, order: Int)
  /// A full-rank least-squares solve met a zero on the diagonal of its triangular factor.
  case rankDeficient(operation: String, column: Int)
  /// A dimension or workspace size that BLAS and LAPACK cannot take (they count in `Int32`).
  case dimensionTooLarge(operation: String, value: Int)

  public var description: String {
    switch self {
    case .shapeMismatch(let operation, let detail):
      "\(operation): shapes do not match: \(detail)"
    case .lapack(let routine, let info):
      "LAPACK '\(routine)' failed with info \(info)"
    case .notPositiveDefinite(let operation, let order):
      "\(operation): matrix is not positive definite (leading minor of order \(order))"
    case .rankDeficient(let operation, let column):
      "\(operation): matrix does not have full rank (zero pivot at column \(column))"
    case .dimensionTooLarge(let operation, let value):
      "\(operation): size \(value) exceeds the 32-bit limit of BLAS and LAPACK"
    }
  }
}
