import Foundation
import QFormats

/// Paths of the committed fixtures written by `Fixtures/make_vision_fixtures.py`.
enum VisionFixtures {
  static let root = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    .appendingPathComponent("Fixtures")

  static func path(_ relative: String) -> String { root.appendingPathComponent(relative).path }

  static func open(_ relative: String) throws -> SafetensorsFile {
    try SafetensorsFile(path: path(relative))
  }

  /// Largest absolute difference between two equally long arrays.
  static func maxAbsDifference(_ a: [Float], _ b: [Float]) -> Float {
    precondition(a.count == b.count, "comparing \(a.count) values with \(b.count)")
    return zip(a, b).reduce(0) { max($0, abs($1.0 - $1.1)) }
  }
}
