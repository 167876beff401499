import Foundation
import QCompute
import Testing

/// numpy and scipy reference arrays written by `Fixtures/make_similarity_fixtures.py`.
struct SimilarityFixtures: Sendable {
  let entries: [String: LinalgFixtures.Entry]
  let values: [Double]

  static let loaded = Result { () throws -> SimilarityFixtures in try load() }

  static func shared() throws -> SimilarityFixtures { try loaded.get() }

  private static func load() throws -> SimilarityFixtures {
    let directory = URL(fileURLWithPath: #filePath)
      .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
      .appendingPathComponent("Fixtures/similarity")
    let manifest = try JSONDecoder().decode(
      LinalgFixtures.Manifest.self,
      from: Data(contentsOf: directory.appendingPathComponent("manifest.json")))
    let raw = try Data(contentsOf: directory.appendingPathComponent("arrays.f64"))
    let values = raw.withUnsafeBytes { bytes in
      (0..<(bytes.count / 8)).map { index in
        Double(
          bitPattern: UInt64(
            littleEndian: bytes.loadUnaligned(fromByteOffset: index * 8, as: UInt64.self)))
      }
    }
    return SimilarityFixtures(entries: manifest.arrays, values: values)
  }

  func vector(_ name: String) throws -> [Double] {
    guard let entry = entries[name] else { throw LinalgFixtures.MissingArray(name: name) }
    let count = entry.shape.reduce(1, *)
    return Array(values[entry.offset..<(entry.offset + count)])
  }

  func matrix<Scalar: LinalgScalar>(_ name: String, as _: Scalar.Type = Scalar.self) throws
    -> Matrix<Scalar>
  {
    guard let entry = entries[name] else { throw LinalgFixtures.MissingArray(name: name) }
    try #require(entry.shape.count == 2, "'\(name)' has shape \(entry.shape)")
    return try Matrix(
      rows: entry.shape[0], columns: entry.shape[1],
      elements: try vector(name).map { Scalar($0) })
  }

  func scalar(_ name: String) throws -> Double {
    let values = try vector(name)
    try #require(values.count == 1, "'\(name)' has \(values.count) values")
    return values[0]
  }
}

/// A small deterministic generator (SplitMix64) so random tests repeat exactly.
struct SeededGenerator: RandomNumberGenerator {
  var state: UInt64

  init(seed: UInt64) { state = seed }

  mutating func next() -> UInt64 {
    state &+= 0x9E37_79B9_7F4A_7C15
    var z = state
    z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
    z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
    return z ^ (z >> 31)
  }

  /// A standard normal sample (Box–Muller).
  mutating func normal() -> Double {
    let u = Double.random(in: Double.ulpOfOne..<1, using: &self)
    let v = Double.random(in: 0..<1, using: &self)
    return (-2 * Foundation.log(u)).squareRoot() * Foundation.cos(2 * Double.pi * v)
  }

  mutating func matrix<Scalar: LinalgScalar>(_ rows: Int, _ columns: Int) -> Matrix<Scalar> {
    var result = Matrix<Scalar>(rows: rows, columns: columns)
    for i in 0..<rows {
      for j in 0..<columns { result[i, j] = Scalar(normal()) }
    }
    return result
  }
}
