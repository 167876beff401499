import Foundation
import Testing

/// Every tool that reads a pack checks each tensor's recorded CRC-32C when it first decodes the
/// tensor's bytes: a flipped byte is a one-line error naming the file and the tensor, in
/// `qconvert --to`, `qdiff` and the engine (`qinspect --perplexity`), not a silently wrong value.
@Suite(.serialized) struct PackChecksumReadTests {
  static let model = fixturesDirectory.appendingPathComponent("tiny-chat").path

  struct Corruption: CustomTestStringConvertible, Sendable {
    /// The tensor whose checksum must fail, and the stored tensor whose byte is flipped.
    var tensor: String
    var stored: String
    var testDescription: String { stored }
  }

  static let corruptions = [
    Corruption(
      tensor: "model.layers.0.mlp.up_proj.weight",
      stored: "model.layers.0.mlp.up_proj.weight.qweight"),
    Corruption(
      tensor: "model.layers.1.self_attn.q_proj.weight",
      stored: "model.layers.1.self_attn.q_proj.weight.scales"),
    Corruption(tensor: "model.norm.weight", stored: "model.norm.weight"),
  ]

  /// A pack of tiny-chat with one byte of `stored` flipped; returns the work folder and the pack.
  func corruptedPack(flipping stored: String) throws -> (work: URL, pack: String) {
    let work = FileManager.default.temporaryDirectory.appendingPathComponent(
      "pack-checksum-\(UUID().uuidString)")
    let pack = work.appendingPathComponent("pack").path
    let convert = try runTool(
      "qconvert", [Self.model, "-o", pack, "--bits", "8", "--group-size", "32", "--quiet"])
    #expect(convert.status == 0, "\(convert.stderr)")
    let file = pack + "/model.safetensors"
    var bytes = try Data(contentsOf: URL(fileURLWithPath: file))
    let headerLength = bytes.prefix(8).enumerated().reduce(0) {
      $0 | Int($1.element) << (8 * $1.offset)
    }
    let header = try #require(
      try JSONSerialization.jsonObject(with: bytes.subdata(in: 8..<(8 + headerLength)))
        as? [String: Any])
    let entry = try #require(header[stored] as? [String: Any])
    let offsets = try #require(entry["data_offsets"] as? [Int])
    let position = 8 + headerLength + (offsets[0] + offsets[1]) / 2
    bytes[position] ^= 0x04
    try bytes.write(to: URL(fileURLWithPath: file))
    return (work, pack)
  }

  func expectNamed(_ run: ToolRun, tool: String, status: Int32, pack: String, tensor: String) {
    #expect(run.status == status, "\(run.stderr)")
    let lines = run.stderr.split(separator: "\n")
    #expect(lines.count == 1, "\(run.stderr)")
    #expect(
      run.stderr.hasPrefix(
        "\(tool): \(pack)/model.safetensors: tensor '\(tensor)' has checksum crc32c:0x"),
      "\(run.stderr)")
    #expect(run.stderr.contains("but its description records crc32c:0x"))
  }

  @Test(arguments: corruptions) func convertingBackRefusesAFlippedByte(_ corruption: Corruption)
    throws
  {
    let (work, pack) = try corruptedPack(flipping: corruption.stored)
    defer { try? FileManager.default.removeItem(at: work) }
    let output = work.appendingPathComponent("plain").path
    let run = try runTool("qconvert", [pack, "--to", "f32", "-o", output, "--quiet"])
    expectNamed(run, tool: "qconvert", status: 1, pack: pack, tensor: corruption.tensor)
    #expect(!FileManager.default.fileExists(atPath: output))
  }

  @Test(arguments: corruptions) func qdiffRefusesAFlippedByte(_ corruption: Corruption) throws {
    let (work, pack) = try corruptedPack(flipping: corruption.stored)
    defer { try? FileManager.default.removeItem(at: work) }
    let run = try runTool("qdiff", [Self.model, pack])
    expectNamed(run, tool: "qdiff", status: 2, pack: pack, tensor: corruption.tensor)
  }

  @Test(arguments: corruptions) func theEngineRefusesAFlippedByte(_ corruption: Corruption) throws {
    let (work, pack) = try corruptedPack(flipping: corruption.stored)
    defer { try? FileManager.default.removeItem(at: work) }
    let run = try runTool(
      "qinspect",
      [
        pack, "--perplexity", fixturesDirectory.appendingPathComponent("tiny-chat.sample.txt").path,
        "--context", "16", "--windows", "1",
      ])
    expectNamed(run, tool: "qinspect", status: 1, pack: pack, tensor: corruption.tensor)
  }

  /// `qinspect --verify` still names every mismatch and exits 1, as before.
  @Test(arguments: corruptions) func verifyStillListsTheMismatch(_ corruption: Corruption) throws {
    let (work, pack) = try corruptedPack(flipping: corruption.stored)
    defer { try? FileManager.default.removeItem(at: work) }
    let run = try runTool("qinspect", [pack, "--verify"])
    #expect(run.status == 1)
    #expect(run.stdout.hasSuffix("1 do not match\n"), "\(run.stdout)")
    expectNamed(run, tool: "qinspect", status: 1, pack: pack, tensor: corruption.tensor)
  }
}
