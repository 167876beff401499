import Foundation
import Testing
@testable import QFormats

@Suite struct SafetensorsShardedTests {
  static let indexPath = SafetensorsFixtures.path("safetensors", "sharded", "model.safetensors.index.json")

  struct Fixture {
    let tensors: [SafetensorsReaderTests.ExpectedTensor]
    let maxShardSize: Int
    let shards: [String: [String]]
    let totalSize: Int
    init() throws {
      let json = try #require(try SafetensorsFixtures.json("safetensors", "sharded", "expected.json") as? [String: Any])
      tensors = try SafetensorsReaderTests.Expected("safetensors", "sharded", "expected.json").tensors
      maxShardSize = try #require(json["max_shard_size"] as? Int)
      shards = try #require(json["shards"] as? [String: [String]])
      totalSize = try #require(json["total_size"] as? Int)
    }
  }

  @Test(arguments: ["model.safetensors.index.json", "mlx-style.index.json"])
  func readsHuggingFaceAndMLXIndexes(index: String) throws {
    let fixture = try Fixture()
    let checkpoint = try ShardedCheckpoint(indexPath: SafetensorsFixtures.path("safetensors", "sharded", index))
    try SafetensorsReaderTests.check(checkpoint, against: fixture.tensors)
    #expect(checkpoint.shards.count == 3)
    #expect(checkpoint.totalSize == fixture.totalSize)
    #expect(checkpoint.metadata["format"] == "pt")
    for (file, names) in fixture.shards {
      for name in names {
        #expect(checkpoint.shard(holding: name)?.location.hasSuffix(file) == true)
      }
    }
  }

  /// A copy of the fixture checkpoint with a rewritten index, to break it in one place.
  static func brokenCopy(_ edit: (inout [String: String]) -> Void) throws -> (URL, String) {
    let directory = try SafetensorsFixtures.temporaryDirectory()
    let source = URL(fileURLWithPath: indexPath).deletingLastPathComponent()
    for file in try FileManager.default.contentsOfDirectory(atPath: source.path) where file.hasSuffix(".safetensors") {
      try FileManager.default.copyItem(at: source.appendingPathComponent(file), to: directory.appendingPathComponent(file))
    }
    let json = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: indexPath))) as? [String: Any])
    var map = try #require(json["weight_map"] as? [String: String])
    edit(&map)
    let index = directory.appendingPathComponent("model.safetensors.index.json")
    try JSONSerialization.data(withJSONObject: ["metadata": ["total_size": 1], "weight_map": map]).write(to: index)
    return (directory, index.path)
  }

  @Test func missingShardIsNamed() throws {
    let (directory, index) = try Self.brokenCopy { $0["lm_head.weight"] = "model-00004-of-00004.safetensors" }
    defer { try? FileManager.default.removeItem(at: directory) }
    let error = try #require(throws: SafetensorsError.self) { try ShardedCheckpoint(indexPath: index) }
    #expect(error.description == "\(index): shard 'model-00004-of-00004.safetensors' named in the weight map does not exist")
  }

  @Test func tensorMappedToWrongShardIsNamed() throws {
    let (directory, index) = try Self.brokenCopy { $0["lm_head.weight"] = "model-00001-of-00003.safetensors" }
    defer { try? FileManager.default.removeItem(at: directory) }
    let error = try #require(throws: SafetensorsError.self) { try ShardedCheckpoint(indexPath: index) }
    #expect(error.description.contains("lacks tensor 'lm_head.weight'"))
  }

  @Test func unlistedTensorIsNamed() throws {
    let (directory, index) = try Self.brokenCopy { $0["model.layers.0.mlp.bias"] = nil }
    defer { try? FileManager.default.removeItem(at: directory) }
    let error = try #require(throws: SafetensorsError.self) { try ShardedCheckpoint(indexPath: index) }
    #expect(error.description.contains("holds tensor 'model.layers.0.mlp.bias' that the weight map does not list"))
  }

  @Test func missingIndexIsASystemError() throws {
    let error = try #require(throws: SafetensorsError.self) { try ShardedCheckpoint(indexPath: "/nonexistent/model.safetensors.index.json") }
    #expect(error.description == "/nonexistent/model.safetensors.index.json: open failed: No such file or directory")
  }

  @Test func pathOutsideFolderIsRefused() throws {
    let (directory, index) = try Self.brokenCopy { $0["lm_head.weight"] = "../elsewhere.safetensors" }
    defer { try? FileManager.default.removeItem(at: directory) }
    let error = try #require(throws: SafetensorsError.self) { try ShardedCheckpoint(indexPath: index) }
    #expect(error.description.contains("outside the checkpoint's folder"))
  }

  /// Same plan and limit as huggingface_hub: same split, same shard bytes, same index.
  @Test func writerMatchesHuggingFaceSplit() throws {
    let fixture = try Fixture()
    let source = try ShardedCheckpoint(indexPath: Self.indexPath)
    let plan = try fixture.tensors.map { try #require(source.info(named: $0.name)) }  // the Python key order
    let directory = try SafetensorsFixtures.temporaryDirectory()
    defer { try? FileManager.default.removeItem(at: directory) }
    let writer = try ShardedWriter(directory: directory.path, plan: plan, maxShardBytes: fixture.maxShardSize)
    #expect(Dictionary(uniqueKeysWithValues: zip(writer.shardNames, writer.shards.map { $0.map(\.name).sorted() }))
      == fixture.shards.mapValues { $0.sorted() })
    for tensor in writer.order {
      try source.withRawBytes(of: tensor.name) { try writer.append(name: tensor.name, bytes: $0) }
    }
    try writer.finish()
    let reference = URL(fileURLWithPath: Self.indexPath).deletingLastPathComponent()
    for name in writer.shardNames {
      let ours = try Data(contentsOf: directory.appendingPathComponent(name))
      let theirs = try Data(contentsOf: reference.appendingPathComponent(name))
      #expect(ours == theirs, "\(name)")
    }
    let ourIndex = try Data(contentsOf: directory.appendingPathComponent("model.safetensors.index.json"))
    let theirIndex = try Data(contentsOf: URL(fileURLWithPath: Self.indexPath))
    #expect(ourIndex == theirIndex + Data("\n".utf8))
    let back = try ShardedCheckpoint(indexPath: directory.appendingPathComponent("model.safetensors.index.json").path)
    try SafetensorsReaderTests.check(back, against: fixture.tensors)
  }

  @Test func singleShardIsPlainFileWithMetadata() throws {
    let directory = try SafetensorsFixtures.temporaryDirectory()
    defer { try? FileManager.default.removeItem(at: directory) }
    let plan = [TensorInfo(name: "a", dtype: .f32, shape: [4]), TensorInfo(name: "b", dtype: .u8, shape: [2])]
    let writer = try ShardedWriter(directory: directory.path, plan: plan, maxShardBytes: 1 << 30, metadata: ["source": "test"])
    #expect(writer.shardNames == ["model.safetensors"])
    #expect(writer.indexName == nil)
    try writer.append(name: "a", bytes: [UInt8](repeating: 0, count: 16))
    try writer.append(name: "b", bytes: [1, 2])
    try writer.finish()
    #expect(try FileManager.default.contentsOfDirectory(atPath: directory.path) == ["model.safetensors"])
    let file = try SafetensorsFile(path: directory.appendingPathComponent("model.safetensors").path)
    #expect(file.metadata == ["format": "pt", "source": "test"])
  }

  @Test(arguments: [
    ([4, 4, 4], 8, [[0, 1], [2]]),
    ([4, 20, 4], 8, [[1], [0, 2]]),  // as huggingface_hub: the oversize one is closed first
    ([4, 4, 20, 4], 8, [[2], [0, 1], [3]]),
    ([8, 8], 8, [[0], [1]]),
    ([1, 2, 3, 4], 100, [[0, 1, 2, 3]]),
    ([], 8, [[]]),
  ] as [([Int], Int, [[Int]])])  // expectations printed by huggingface_hub's splitter
  func splitIsGreedyWithOversizeTensorsAlone(sizes: [Int], limit: Int, expected: [[Int]]) {
    let plan = sizes.enumerated().map { TensorInfo(name: "t\($0.offset)", dtype: .u8, shape: [$0.element]) }
    let split = ShardedWriter.split(plan, maxShardBytes: limit)
    #expect(split.map { $0.map { Int($0.name.dropFirst()) ?? -1 } } == expected)
  }

  @Test func unfinishedShardSetNamesMissingTensor() throws {
    let directory = try SafetensorsFixtures.temporaryDirectory()
    defer { try? FileManager.default.removeItem(at: directory) }
    let plan = (0..<3).map { TensorInfo(name: "t\($0)", dtype: .u8, shape: [4]) }
    let writer = try ShardedWriter(directory: directory.path, plan: plan, maxShardBytes: 4, order: .asGiven)
    #expect(writer.shardNames == ["model-00001-of-00003.safetensors", "model-00002-of-00003.safetensors", "model-00003-of-00003.safetensors"])
    try writer.append(name: "t0", bytes: [0, 0, 0, 0])
    let error = try #require(throws: SafetensorsError.self) { try writer.finish() }
    #expect(error.description.contains("first 't1'"))
  }
}
