/// A dense row-major matrix of `Float` or `Double`, the operand of the BLAS/LAPACK wrappers.
///
/// Element `(i, j)` lives at `elements[i * columns + j]`. LAPACK is column-major, and the same
/// buffer read column-major is the transpose; each operation documents how it uses that to avoid
/// copies (for symmetric inputs the two readings are the same matrix).
public struct Matrix<Scalar: LinalgScalar>: Sendable, Equatable {
  public let rows: Int
  public let columns: Int
  @usableFromInline var storage: [Scalar]

  /// A `rows` × `columns` matrix of zeros.
  public init(rows: Int, columns: Int) {
    precondition(rows >= 0 && columns >= 0, "Matrix dimensions must not be negative")
    let (count, overflow) = rows.multipliedReportingOverflow(by: columns)
    precondition(!overflow, "Matrix of \(rows) x \(columns) elements overflows Int")
    self.rows = rows
    self.columns = columns
    self.storage = Array(repeating: 0, count: count)
  }

  /// A matrix over row-major `elements`.
  /// - Throws: `ComputeError.shapeMismatch` when the count is not `rows * columns`.
  public init(rows: Int, columns: Int, elements: [Scalar]) throws {
    guard rows >= 0, columns >= 0,
      case (let count, false) = rows.multipliedReportingOverflow(by: columns),
      count == elements.count
    else {
      throw ComputeError.shapeMismatch(
        operation: "Matrix(rows:columns:elements:)",
        detail: "\(elements.count) elements for \(rows) x \(columns)")
    }
    self.rows = rows
    self.columns = columns
    self.storage = elements
  }

  /// A matrix from its rows; an empty array gives a 0 × 0 matrix.
  /// - Throws: `ComputeError.shapeMismatch` when the rows differ in length.
  public init(_ rowArrays: [[Scalar]]) throws {
    let columns = rowArrays.first?.count ?? 0
    if let ragged = rowArrays.firstIndex(where: { $0.count != columns }) {
      throw ComputeError.shapeMismatch(
        operation: "Matrix(_:)",
        detail: "row \(ragged) has \(rowArrays[ragged].count) elements, row 0 has \(columns)")
    }
    self.rows = rowArrays.count
    self.columns = columns
    self.storage = rowArrays.flatMap { $0 }
  }

  /// Internal initialiser for buffers whose size the caller computed.
  init(rows: Int, columns: Int, storage: [Scalar]) {
    assert(storage.count == rows * columns)
    self.rows = rows
    self.columns = columns
    self.storage = storage
  }

  /// A `rows` × `columns` matrix of zeros.
  public static func zeros(rows: Int, columns: Int) -> Matrix {
    Matrix(rows: rows, columns: columns)
  }

  /// The `order` × `order` identity matrix.
  public static func identity(_ order: Int) -> Matrix {
    var result = Matrix(rows: order, columns: order)
    for i in 0..<order { result.storage[i &* order &+ i] = 1 }
    return result
  }

  /// The row-major elements.
  public var elements: [Scalar] { storage }

  /// The number of elements, `rows * columns`.
  public var count: Int { storage.count }

  /// `true` when the matrix has no rows or no columns.
  public var isEmpty: Bool { storage.isEmpty }

  /// `true` when the matrix has as many rows as columns.
  public var isSquare: Bool { rows == columns }

  @inlinable
  public subscript(row: Int, column: Int) -> Scalar {
    get {
      precondition(row >= 0 && row < rows && column >= 0 && column < columns, "Index out of range")
      return storage[row &* columns &+ column]
    }
    set {
      precondition(row >= 0 && row < rows && column >= 0 && column < columns, "Index out of range")
      storage[row &* columns &+ column] = newValue
    }
  }

  /// The elements of one row.
  public func row(_ index: Int) -> [Scalar] {
    precondition(index >= 0 && index < rows, "Row index out of range")
    return Array(storage[(index * columns)..<((index + 1) * columns)])
  }

  /// The elements of one column.
  public func column(_ index: Int) -> [Scalar] {
    precondition(index >= 0 && index < columns, "Column index out of range")
    return (0..<rows).map { storage[$0 &* columns &+ index] }
  }

  /// Calls `body` with the row-major elements.
  @inlinable
  public func withUnsafeBufferPointer<R, E: Error>(
    _ body: (UnsafeBufferPointer<Scalar>) throws(E) -> R
  ) throws(E) -> R {
    try storage.withUnsafeBufferPointer { (buffer) throws(E) -> R in try body(buffer) }
  }

  /// Calls `body` with the row-major elements, which it may change (not their count).
  @inlinable
  public mutating func withUnsafeMutableBufferPointer<R, E: Error>(
    _ body: (UnsafeMutableBufferPointer<Scalar>) throws(E) -> R
  ) throws(E) -> R {
    try storage.withUnsafeMutableBufferPointer { (buffer) throws(E) -> R in try body(buffer) }
  }

  /// The transpose, copied in tiles so that both sides stay in cache.
  public func transposed() -> Matrix {
    var result = Matrix(rows: columns, columns: rows)
    let rows = self.rows
    let columns = self.columns
    let tile = 32
    storage.withUnsafeBufferPointer { source in
      result.storage.withUnsafeMutableBufferPointer { target in
        for rowStart in stride(from: 0, to: rows, by: tile) {
          let rowEnd = min(rowStart + tile, rows)
          for columnStart in stride(from: 0, to: columns, by: tile) {
            let columnEnd = min(columnStart + tile, columns)
            for i in rowStart..<rowEnd {
              for j in columnStart..<columnEnd {
                target[j &* rows &+ i] = source[i &* columns &+ j]
              }
            }
          }
        }
      }
    }
    return result
  }

  /// The Frobenius norm, `sqrt(sum of squares)`, computed by BLAS `nrm2` without overflow.
  public var frobeniusNorm: Scalar {
    storage.withUnsafeBufferPointer { buffer in
      // nrm2 counts in Int32; combine chunks, each already scaled safely.
      let chunk = Int(Int32.max)
      var start = 0
      var norm: Scalar = 0
      repeat {
        let length = min(chunk, buffer.count - start)
        let part = Scalar._nrm2(n: Int32(length), x: buffer.baseAddress.map { $0 + start })
        let larger = max(norm, part)
        if larger > 0 {
          let a = norm / larger
          let b = part / larger
          norm = larger * (a * a + b * b).squareRoot()
        }
        start += length
      } while start < buffer.count
      return norm
    }
  }
}

extension Matrix: CustomStringConvertible {
  public var description: String {
    let body = (0..<rows).map { i in
      "[" + row(i).map { "\($0)" }.joined(separator: ", ") + "]"
    }
    return "Matrix \(rows)x\(columns) [" + body.joined(separator: ", ") + "]"
  }
}
