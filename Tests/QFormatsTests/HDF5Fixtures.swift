import Foundation

/// The committed fixtures made by `Fixtures/make_hdf5_fixtures.py` and their expected contents.
enum HDF5Fixtures {
  static let directory = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    .appendingPathComponent("Fixtures").appendingPathComponent("hdf5")

  static func path(_ name: String) -> String {
    directory.appendingPathComponent(name).path
  }

  struct Expected: Decodable {
    var tensors: [Tensor]
    var skipped: [String]
    var metadata: [String: String]
  }

  struct Tensor: Decodable {
    var name: String
    var dtype: String
    var shape: [Int]
    var hex: String

    var bytes: [UInt8] {
      var result: [UInt8] = []
      var digits = hex.utf8.makeIterator()
      while let high = digits.next(), let low = digits.next() {
        result.append(UInt8(hexDigit(high) << 4 | hexDigit(low)))
      }
      return result
    }

    private func hexDigit(_ c: UInt8) -> Int {
      c >= UInt8(ascii: "a") ? Int(c - UInt8(ascii: "a") + 10) : Int(c - UInt8(ascii: "0"))
    }
  }

  /// Reads `STEM.expected.json` for the fixture `STEM.h5`.
  static func expected(for name: String) throws -> Expected {
    let stem = String(name.dropLast(".h5".count))
    let data = try Data(contentsOf: directory.appendingPathComponent(stem + ".expected.json"))
    return try JSONDecoder().decode(Expected.self, from: data)
  }

  /// A fresh scratch directory under the system temporary directory.
  static func scratchDirectory() throws -> URL {
    let url = FileManager.default.temporaryDirectory
      .appendingPathComponent("hdf5-tests-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    return url
  }
}
