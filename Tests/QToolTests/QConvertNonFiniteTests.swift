import Foundation
import QCompute
import QFormats
import Testing

@testable import QToolSupport

/// qconvert refuses to write a pack holding NaN or infinity unless `--allow-nonfinite` is given;
/// the fixtures and the element numpy finds first come from `Fixtures/make_nonfinite_fixtures.py`.
@Suite struct QConvertNonFiniteTests {
  struct Expected: Decodable {
    var tensor: String
    var index: [Int]
    var flat_index: Int
    var value: String
  }

  static let folder = fixturesDirectory.appendingPathComponent("nonfinite")
  static let cases = ["nan-weight", "inf-weight", "inf-norm"]

  static func expected(_ name: String) throws -> Expected {
    let data = try Data(contentsOf: folder.appendingPathComponent("expected.json"))
    return try #require(try JSONDecoder().decode([String: Expected].self, from: data)[name])
  }

  func scratch() throws -> URL {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("qconvert-nonfinite-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    return url
  }

  @Test(arguments: cases) func refusesWithOneLineNamingFileTensorIndexAndValue(name: String) throws {
    let folder = try scratch()
    defer { try? FileManager.default.removeItem(at: folder) }
    let input = Self.folder.appendingPathComponent(name).path
    let output = folder.appendingPathComponent("out").path
    let expected = try Self.expected(name)
    let run = try runTool("qconvert", [input, "-o", output, "--quiet"])
    #expect(run.status == 1)
    let line =
      "qconvert: \(input + "/model.safetensors"): tensor '\(expected.tensor)' holds \(expected.value) at index "
      + "\(expected.index) (flat index \(expected.flat_index)); use '--allow-nonfinite' to keep such tensors unquantized\n"
    #expect(run.stderr == line)
    #expect(!FileManager.default.fileExists(atPath: output))
  }

  @Test(arguments: cases) func allowNonFiniteKeepsTheTensorAsStored(name: String) throws {
    let folder = try scratch()
    defer { try? FileManager.default.removeItem(at: folder) }
    let input = Self.folder.appendingPathComponent(name).path
    let output = folder.appendingPathComponent("out").path
    let expected = try Self.expected(name)
    let run = try runTool("qconvert", [input, "-o", output, "--quiet", "--allow-nonfinite"])
    #expect(run.status == 0, "\(run.stderr)")
    let source = try SafetensorsFile(path: input + "/model.safetensors")
    let written = try SafetensorsFile(path: output + "/model.safetensors")
    let pack = try PackedCheckpoint(wrapping: written)
    // The offending tensor is stored byte for byte, not packed; the others are packed as usual.
    #expect(pack.packDescriptions[expected.tensor] == nil)
    let before = try source.withRawBytes(of: expected.tensor) { [UInt8]($0) }
    let after = try written.withRawBytes(of: expected.tensor) { [UInt8]($0) }
    #expect(before == after)
    for info in source.tensors where info.name != expected.tensor && info.shape.count == 2 {
      #expect(pack.packDescriptions[info.name] != nil, "\(info.name)")
    }
    let verify = try runTool("qinspect", ["--verify", output])
    #expect(verify.status == 0, "\(verify.stderr)")
    if name != "inf-norm" {
      // A weight planned for quantizing and kept instead is announced.
      #expect(
        run.stderr
          == "qconvert: warning: \(input + "/model.safetensors"): tensor '\(expected.tensor)' holds \(expected.value) "
          + "at index \(expected.index) (flat index \(expected.flat_index)); kept unquantized\n")
      let config = try JSONSerialization.jsonObject(
        with: Data(contentsOf: URL(fileURLWithPath: output + "/config.json"))) as? [String: Any]
      let block = try #require(config?["quantization"] as? [String: Any])
      #expect(block[String(expected.tensor.dropLast(".weight".count))] as? Bool == false)
    } else {
      #expect(run.stderr.isEmpty)
    }
  }

  /// The flat index is the row-major position numpy's `ravel` gives, for every rank.
  @Test func flatIndexIsRowMajor() {
    let cases: [([Int], [Int], Int)] = [
      ([], [], 0), ([7], [64], 7), ([2, 5], [4, 64], 133), ([1, 2, 3], [2, 3, 4], 23), ([0, 0, 1], [5, 1, 2], 1),
    ]
    for (index, shape, flat) in cases {
      let element = NonFiniteElement(location: "x", tensor: "t", index: index, shape: shape, value: .nan)
      #expect(element.flatIndex == flat, "\(index) in \(shape)")
    }
  }
}
