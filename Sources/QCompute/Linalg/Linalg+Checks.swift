/// A dimension as the `Int32` that BLAS and LAPACK take.
/// - Throws: `ComputeError.dimensionTooLarge` when it does not fit.
func blasInt(_ value: Int, _ operation: String) throws(ComputeError) -> Int32 {
  guard let narrow = Int32(exactly: value) else {
    throw .dimensionTooLarge(operation: operation, value: value)
  }
  return narrow
}

/// The workspace length that a LAPACK query (`lwork = -1`) reported in `work[0]`.
///
/// The size comes back as a floating-point number, which in `Float` can fall just below the true
/// integer for large sizes, so it is rounded up with a margin of one unit in the last place.
func workspaceLength<Scalar: LinalgScalar>(
  _ reported: Scalar, _ operation: String
) throws(ComputeError) -> Int32 {
  let value = (Double(reported) * (1 + Double(Scalar.ulpOfOne))).rounded(.up)
  guard value.isFinite, value <= Double(Int32.max) else {
    throw .dimensionTooLarge(operation: operation, value: value.isFinite ? Int(value) : Int.max)
  }
  return max(1, Int32(value))
}

/// Turns a LAPACK `info` into an error naming the typed routine (e.g. `dgesdd`).
func checkLapack<Scalar: LinalgScalar>(
  _ info: Int32, _ routine: String, _: Scalar.Type
) throws(ComputeError) {
  guard info == 0 else { throw .lapack(routine: Scalar._lapackPrefix + routine, info: info) }
}

extension Matrix {
  /// Copies the row-major lower triangle onto the upper one.
  mutating func mirrorLowerToUpper() {
    let n = rows
    storage.withUnsafeMutableBufferPointer { buffer in
      for i in 0..<n {
        for j in 0..<i { buffer[j &* n &+ i] = buffer[i &* n &+ j] }
      }
    }
  }

  /// Copies the row-major upper triangle onto the lower one.
  mutating func mirrorUpperToLower() {
    let n = rows
    storage.withUnsafeMutableBufferPointer { buffer in
      for i in 0..<n {
        for j in 0..<i { buffer[i &* n &+ j] = buffer[j &* n &+ i] }
      }
    }
  }

  /// Throws unless the matrix is square.
  func requireSquare(_ operation: String) throws(ComputeError) {
    guard rows == columns else {
      throw .shapeMismatch(
        operation: operation, detail: "expected a square matrix, got \(rows) x \(columns)")
    }
  }
}
