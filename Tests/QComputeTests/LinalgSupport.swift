import Foundation
import QCompute
import Testing

/// numpy reference arrays written by `Fixtures/make_linalg_fixtures.py`.
struct LinalgFixtures: Sendable {
  struct Entry: Decodable, Sendable {
    var shape: [Int]
    var offset: Int
  }
  struct Manifest: Decodable, Sendable {
    var arrays: [String: Entry]
  }
  struct MissingArray: Error, CustomStringConvertible {
    var name: String
    var description: String { "Fixture array '\(name)' is missing" }
  }

  let entries: [String: Entry]
  let values: [Double]

  static let loaded = Result { () throws -> LinalgFixtures in try load() }

  static func shared() throws -> LinalgFixtures { try loaded.get() }

  private static func load() throws -> LinalgFixtures {
    // Tests/QComputeTests/<file> -> the package root -> Fixtures/linalg.
    let directory = URL(fileURLWithPath: #filePath)
      .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
      .appendingPathComponent("Fixtures/linalg")
    let manifest = try JSONDecoder().decode(
      Manifest.self, from: Data(contentsOf: directory.appendingPathComponent("manifest.json")))
    let raw = try Data(contentsOf: directory.appendingPathComponent("arrays.f64"))
    let values = raw.withUnsafeBytes { bytes in
      (0..<(bytes.count / 8)).map { index in
        Double(
          bitPattern: UInt64(
            littleEndian: bytes.loadUnaligned(fromByteOffset: index * 8, as: UInt64.self)))
      }
    }
    return LinalgFixtures(entries: manifest.arrays, values: values)
  }

  /// The array's shape and its row-major values.
  func array(_ name: String) throws -> (shape: [Int], values: [Double]) {
    guard let entry = entries[name] else { throw MissingArray(name: name) }
    let count = entry.shape.reduce(1, *)
    return (entry.shape, Array(values[entry.offset..<(entry.offset + count)]))
  }

  /// A 2-D fixture array as a matrix of `Scalar`.
  func matrix<Scalar: LinalgScalar>(_ name: String, as _: Scalar.Type = Scalar.self) throws
    -> Matrix<Scalar>
  {
    let (shape, values) = try array(name)
    try #require(shape.count == 2, "'\(name)' has shape \(shape)")
    return try Matrix(rows: shape[0], columns: shape[1], elements: values.map { Scalar($0) })
  }

  /// A 1-D fixture array.
  func vector(_ name: String) throws -> [Double] {
    try array(name).values
  }
}

/// The two scalar types the tests run for, with tolerances that suit each.
enum Precision: String, CaseIterable, CustomTestStringConvertible, Sendable {
  case float, double

  var testDescription: String { rawValue }

  /// A relative tolerance for well-conditioned results, scaled by `factor` where the problem needs it.
  func tolerance(_ factor: Double = 1) -> Double {
    switch self {
    case .float: 2e-7 * factor
    case .double: 1e-13 * factor
    }
  }
}

/// The largest absolute value, or 1 for an all-zero or empty array, to scale tolerances.
func magnitude(_ values: [Double]) -> Double {
  let largest = values.map(abs).max() ?? 0
  return largest > 0 ? largest : 1
}

/// Expects `actual` to match `expected` element-wise within `tolerance` relative to the
/// magnitude of `expected`.
func expectClose(
  _ actual: [Double], _ expected: [Double], tolerance: Double, _ label: String,
  sourceLocation: SourceLocation = #_sourceLocation
) {
  guard actual.count == expected.count else {
    Issue.record(
      "\(label): \(actual.count) values, expected \(expected.count)", sourceLocation: sourceLocation
    )
    return
  }
  let worst = zip(actual, expected).map { abs($0 - $1) }.max() ?? 0
  let allowed = tolerance * magnitude(expected)
  #expect(
    worst <= allowed, "\(label): max error \(worst) > \(allowed)", sourceLocation: sourceLocation)
}

func expectClose<Scalar: LinalgScalar>(
  _ actual: Matrix<Scalar>, _ expected: Matrix<Double>, tolerance: Double, _ label: String,
  sourceLocation: SourceLocation = #_sourceLocation
) {
  #expect(
    actual.rows == expected.rows && actual.columns == expected.columns,
    "\(label): shape \(actual.rows) x \(actual.columns), expected \(expected.rows) x \(expected.columns)",
    sourceLocation: sourceLocation)
  expectClose(
    actual.elements.map { Double($0) }, expected.elements, tolerance: tolerance, label,
    sourceLocation: sourceLocation)
}

func expectClose<Scalar: LinalgScalar>(
  _ actual: [Scalar], _ expected: [Double], tolerance: Double, _ label: String,
  sourceLocation: SourceLocation = #_sourceLocation
) {
  expectClose(
    actual.map { Double($0) }, expected, tolerance: tolerance, label, sourceLocation: sourceLocation
  )
}

extension Matrix {
  /// The matrix in `Double`, for comparisons.
  var asDouble: Matrix<Double> {
    var result = Matrix<Double>(rows: rows, columns: columns)
    let source = elements
    result.withUnsafeMutableBufferPointer { target in
      for index in target.indices { target[index] = Double(source[index]) }
    }
    return result
  }

  /// Column `j` multiplied by `sign`.
  mutating func scaleColumn(_ j: Int, by sign: Scalar) {
    for i in 0..<rows { self[i, j] *= sign }
  }

  /// Row `i` multiplied by `sign`.
  mutating func scaleRow(_ i: Int, by sign: Scalar) {
    for j in 0..<columns { self[i, j] *= sign }
  }
}

/// `max |Mᵢⱼ − Iᵢⱼ|`, how far a matrix is from the identity.
func distanceFromIdentity<Scalar: LinalgScalar>(_ m: Matrix<Scalar>) -> Double {
  var worst = 0.0
  for i in 0..<m.rows {
    for j in 0..<m.columns {
      worst = max(worst, abs(Double(m[i, j]) - (i == j ? 1 : 0)))
    }
  }
  return worst
}
