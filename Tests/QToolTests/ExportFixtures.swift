import Foundation
import QFormats

/// Committed fixtures for the exporters (made by `Fixtures/make_export_fixtures.py`) and scratch folders.
enum ExportFixtures {
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

  static var tinyLlama: String { path("tiny-llama") }

  static func tinyLlamaConfig() throws -> Data {
    try Data(contentsOf: URL(fileURLWithPath: path("tiny-llama", "config.json")))
  }

  /// A fresh empty folder under the temporary directory.
  static func scratchFolder(_ label: String) throws -> String {
    let folder = FileManager.default.temporaryDirectory
      .appendingPathComponent("export-tests-\(label)-\(UUID().uuidString)").path
    try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
    return folder
  }

  static func bytes(of name: String, in source: any TensorSource) throws -> [UInt8] {
    try source.withRawBytes(of: name) { Array($0) }
  }

  /// Writes an F32 safetensors file holding the given tensors.
  static func writeF32(_ tensors: [(name: String, shape: [Int], values: [Float])], to path: String)
    throws
  {
    let plan = tensors.map { TensorInfo(name: $0.name, dtype: .f32, shape: $0.shape) }
    let writer = try SafetensorsWriter(path: path, plan: plan, order: .asGiven)
    for tensor in tensors {
      try tensor.values.withUnsafeBufferPointer { try writer.append(name: tensor.name, converting: $0) }
    }
    try writer.finish()
  }

  static func readJSON(_ path: String) throws -> JSONValue {
    try JSONDecoder().decode(JSONValue.self, from: Data(contentsOf: URL(fileURLWithPath: path)))
  }
}
