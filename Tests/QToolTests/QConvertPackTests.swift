import Foundation
import QCompute
import QFormats
import Testing

@testable import QToolSupport

/// qconvert's pack output options end to end on the tiny fixture: zstd, checksums, shards and
/// `.zst` inputs.
@Suite struct QConvertPackTests {
  let input = fixturesDirectory.appendingPathComponent("tiny-llama").path

  func scratch() throws -> URL {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("qconvert-pack-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    return url
  }

  /// Every tensor of a checkpoint as float bit patterns, by name.
  func restored(_ path: String) throws -> [String: [UInt32]] {
    let source = try Checkpoint.open(path).source
    let pack = try PackedCheckpoint(wrapping: source)
    var out: [String: [UInt32]] = [:]
    for info in pack.tensors { out[info.name] = try pack.dequantizedFloats(of: info.name).map(\.bitPattern) }
    return out
  }

  @Test func zstdRoundTripMatchesThePlainPackAndVerifies() throws {
    let folder = try scratch()
    defer { try? FileManager.default.removeItem(at: folder) }
    let plain = folder.appendingPathComponent("plain").path
    let packed = folder.appendingPathComponent("zstd").path
    #expect(try runTool("qconvert", [input, "-o", plain, "--quiet"]).status == 0)
    let run = try runTool("qconvert", [input, "-o", packed, "--compress", "zstd"])
    #expect(run.status == 0, "\(run.stderr)")
    #expect(run.stderr.contains("zstd: codes"))
    #expect(run.stderr.contains("saved"))
    let pack = try PackedCheckpoint(wrapping: try SafetensorsFile(path: packed + "/model.safetensors"))
    #expect(pack.packDescriptions.values.allSatisfy { $0.compression == "zstd" && $0.checksum != nil })
    #expect(try restored(packed) == restored(plain))
    let verify = try runTool("qinspect", ["--verify", packed])
    #expect(verify.status == 0, "\(verify.stderr)")
    #expect(verify.stdout.contains("all match"))
  }

  @Test func verifyNamesATensorWithAFlippedByte() throws {
    let folder = try scratch()
    defer { try? FileManager.default.removeItem(at: folder) }
    let output = folder.appendingPathComponent("out").path
    #expect(try runTool("qconvert", [input, "-o", output, "--quiet"]).status == 0)
    let path = output + "/model.safetensors"
    #expect(try runTool("qinspect", ["--verify", output]).status == 0)
    // Flip one bit in the last byte of the data of one companion.
    let file = try SafetensorsFile(path: path)
    let pack = try PackedCheckpoint(wrapping: file)
    let victim = try #require(pack.packDescriptions.keys.sorted().first)
    let entry = try #require(file.entry(named: victim + ".qweight"))
    var bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: path)))
    bytes[file.dataStart + entry.dataRange.upperBound - 1] ^= 0x04
    try Data(bytes).write(to: URL(fileURLWithPath: path))
    let verify = try runTool("qinspect", ["--verify", output])
    #expect(verify.status == 1)
    #expect(verify.stderr.contains("'\(victim)'"))
    #expect(verify.stdout.contains("1 do not match"))
  }

  @Test func shardedInputGivesShardedOutput() throws {
    let folder = try scratch()
    defer { try? FileManager.default.removeItem(at: folder) }
    // A sharded copy of the fixture, with the config beside it.
    let sharded = folder.appendingPathComponent("sharded").path
    try FileManager.default.createDirectory(atPath: sharded, withIntermediateDirectories: true)
    try FileManager.default.copyItem(atPath: input + "/config.json", toPath: sharded + "/config.json")
    let source = try SafetensorsFile(path: input + "/model.safetensors")
    let limit = source.tensors.reduce(0) { $0 + $1.byteCount } / 3
    let writer = try ShardedWriter(directory: sharded, plan: source.tensors, maxShardBytes: limit, order: .asGiven)
    for info in writer.order { try source.withRawBytes(of: info.name) { try writer.append(name: info.name, bytes: $0) } }
    try writer.finish()

    let plainOut = folder.appendingPathComponent("plain").path
    let shardedOut = folder.appendingPathComponent("out").path
    #expect(try runTool("qconvert", [input, "-o", plainOut, "--quiet"]).status == 0)
    // A limit under the input's so that the smaller pack is still split.
    let run = try runTool("qconvert", [sharded, "-o", shardedOut, "--quiet", "--max-shard-size", "\(limit / 4)"])
    #expect(run.status == 0, "\(run.stderr)")
    let names = try FileManager.default.contentsOfDirectory(atPath: shardedOut)
    #expect(names.contains("model.safetensors.index.json"))
    #expect(names.filter { $0.hasPrefix("model-") }.count >= 2)
    #expect(!names.contains("model.safetensors"))
    #expect(try restored(shardedOut) == restored(plainOut))
    #expect(try runTool("qinspect", ["--verify", shardedOut]).status == 0)

    // Without --max-shard-size, the input's largest shard sets the limit.
    let likeInput = folder.appendingPathComponent("like").path
    #expect(try runTool("qconvert", [sharded, "-o", likeInput, "--quiet"]).status == 0)
    let shardFiles = try FileManager.default.contentsOfDirectory(atPath: likeInput).filter { $0.hasSuffix(".safetensors") }
    let inputLargest = try ShardedCheckpoint(indexPath: sharded + "/model.safetensors.index.json").shards.map(\.fileSize).max() ?? 0
    for name in shardFiles {
      let size = try #require(try FileManager.default.attributesOfItem(atPath: likeInput + "/" + name)[.size] as? Int)
      #expect(size <= inputLargest + 4096)
    }
  }

  @Test func zstdCompressedInputIsReadTransparently() throws {
    let folder = try scratch()
    defer { try? FileManager.default.removeItem(at: folder) }
    let compressed = folder.appendingPathComponent("model").path
    try FileManager.default.createDirectory(atPath: compressed, withIntermediateDirectories: true)
    try FileManager.default.copyItem(atPath: input + "/config.json", toPath: compressed + "/config.json")
    let raw = try [UInt8](Data(contentsOf: URL(fileURLWithPath: input + "/model.safetensors")))
    // Two frames back to back, as `zstd` writes for concatenated inputs.
    let half = raw.count / 2
    var frames = try raw[..<half].withUnsafeBytes { try PackCompression.compress($0, location: "t", tensor: "-") }
    frames += try raw[half...].withUnsafeBytes { try PackCompression.compress($0, location: "t", tensor: "-") }
    let zstPath = compressed + "/model.safetensors.zst"
    try Data(frames).write(to: URL(fileURLWithPath: zstPath))

    let opened = try Checkpoint.open(zstPath)
    let original = try Checkpoint.open(input).source
    #expect(opened.source.tensors == original.tensors)
    for info in original.tensors {
      #expect(try opened.source.withRawBytes(of: info.name) { [UInt8]($0) } == original.withRawBytes(of: info.name) { [UInt8]($0) })
    }
    #expect(try Checkpoint.open(compressed).source.tensors == original.tensors)

    let fromZst = folder.appendingPathComponent("a").path
    let fromPlain = folder.appendingPathComponent("b").path
    #expect(try runTool("qconvert", [zstPath, "-o", fromZst, "--quiet"]).status == 0)
    #expect(try runTool("qconvert", [input, "-o", fromPlain, "--quiet"]).status == 0)
    #expect(
      try Data(contentsOf: URL(fileURLWithPath: fromZst + "/model.safetensors"))
        == Data(contentsOf: URL(fileURLWithPath: fromPlain + "/model.safetensors")))

    // A truncated stream is an error naming the file, not a short checkpoint.
    let truncated = folder.appendingPathComponent("cut.safetensors.zst").path
    try Data(frames.prefix(frames.count - 7)).write(to: URL(fileURLWithPath: truncated))
    #expect(throws: ZstdInputError.self) { try Checkpoint.open(truncated) }
  }
}
