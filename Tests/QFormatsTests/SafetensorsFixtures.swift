import Foundation

/// Locates the committed fixtures by walking up from this file to `Fixtures/`.
enum SafetensorsFixtures {
  static let root: URL = {
    var url = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
    while url.path != "/" {
      let candidate = url.appendingPathComponent("Fixtures")
      if FileManager.default.fileExists(atPath: candidate.path) { return candidate }
      url = url.deletingLastPathComponent()
    }
    return URL(fileURLWithPath: "Fixtures")
  }()

  static func path(_ components: String...) -> String {
    components.reduce(root) { $0.appendingPathComponent($1) }.path
  }

  static func data(_ components: String...) throws -> Data {
    try Data(contentsOf: URL(fileURLWithPath: components.reduce(root) { $0.appendingPathComponent($1) }.path))
  }

  /// Little-endian `UInt32`s from a raw fixture file.
  static func words(_ components: String...) throws -> [UInt32] {
    let data = try Data(contentsOf: URL(fileURLWithPath: components.reduce(root) { $0.appendingPathComponent($1) }.path))
    return data.withUnsafeBytes { raw in
      (0..<raw.count / 4).map { UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: $0 * 4, as: UInt32.self)) }
    }
  }

  static func json(_ components: String...) throws -> Any {
    let data = try Data(contentsOf: URL(fileURLWithPath: components.reduce(root) { $0.appendingPathComponent($1) }.path))
    return try JSONSerialization.jsonObject(with: data)
  }

  /// A fresh empty directory for a test's output.
  static func temporaryDirectory() throws -> URL {
    let url = FileManager.default.temporaryDirectory
      .appendingPathComponent("qformats-tests-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    return url
  }
}

extension Array where Element == UInt8 {
  init(hex: String) {
    var bytes: [UInt8] = []
    var iterator = hex.utf8.makeIterator()
    while let high = iterator.next(), let low = iterator.next() {
      func nibble(_ c: UInt8) -> UInt8 { c <= 57 ? c - 48 : (c | 0x20) - 87 }
      bytes.append(nibble(high) << 4 | nibble(low))
    }
    self = bytes
  }
}
