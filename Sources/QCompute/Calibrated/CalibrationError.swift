/// Failures of the calibrated quantizers, each naming the operation and what was wrong.
public enum CalibrationError: Error, CustomStringConvertible, Equatable {
  /// The Hessian (or Gram matrix) does not match the weight's input dimension.
  case hessianShapeMismatch(operation: String, rows: Int, columns: Int, weightColumns: Int)
  /// An option outside its range, such as a negative damping or a block size of zero.
  case invalidOption(operation: String, detail: String)
  /// The Hessian stayed singular after damping.
  case hessianNotPositiveDefinite(operation: String, dampingFraction: Double)
  /// The grid itself rejected the shape or bit width.
  case grid(QuantizeError)
  /// A linear-algebra step failed.
  case compute(ComputeError)
  /// No choice of options fits the bit budget.
  case budgetTooSmall(budgetBits: Int, minimumBits: Int)

  public var description: String {
    switch self {
    case .hessianShapeMismatch(let operation, let rows, let columns, let weightColumns):
      "\(operation): Hessian is \(rows) x \(columns), the weight has \(weightColumns) columns"
    case .invalidOption(let operation, let detail):
      "\(operation): \(detail)"
    case .hessianNotPositiveDefinite(let operation, let dampingFraction):
      "\(operation): Hessian is not positive definite with damping \(dampingFraction); raise the damping or add calibration data"
    case .grid(let error):
      error.description
    case .compute(let error):
      error.description
    case .budgetTooSmall(let budgetBits, let minimumBits):
      "Bit budget of \(budgetBits) bits is below the smallest choice of \(minimumBits) bits"
    }
  }
}
