import Foundation

/// Reads the blobs and JSON manifests written by Fixtures/make_quant_fixtures.py.
struct QuantFixtures {
  /// An array inside the blob: [byte offset, element count].
  typealias Slice = [Int]

  let blob: Data

  init(blobNamed name: String) throws {
    blob = try Data(contentsOf: Self.directory.appending(path: name))
  }

  static var directory: URL {
    // Tests/QComputeTests/<file> -> repository root -> Fixtures/quant
    URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
      .deletingLastPathComponent().appending(path: "Fixtures/quant")
  }

  static func manifest<Manifest: Decodable>(_ name: String, as type: Manifest.Type) throws
    -> Manifest
  {
    try JSONDecoder().decode(type, from: Data(contentsOf: directory.appending(path: name)))
  }

  func values<Element>(_ slice: Slice, as type: Element.Type) -> [Element] {
    let offset = slice[0]
    let count = slice[1]
    return blob.withUnsafeBytes { raw in
      (0..<count).map {
        raw.loadUnaligned(fromByteOffset: offset + $0 * MemoryLayout<Element>.stride, as: type)
      }
    }
  }

  func bytes(_ slice: Slice) -> [UInt8] { values(slice, as: UInt8.self) }

  /// F32 or F16 values, widened to Float.
  func floats(_ slice: Slice, dtype: String) -> [Float] {
    dtype == "F16" ? values(slice, as: Float16.self).map(Float.init) : values(slice, as: Float.self)
  }
}
