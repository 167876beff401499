import Foundation
import Testing

@testable import QFormats

private struct ExpectedImatrix: Decodable {
  let datasets: [String]
  let chunkCount: Int
  let chunkSize: Int
  let weights: [String: [UInt32]]
}

private func expected() throws -> [String: ExpectedImatrix] {
  let url = GGUFFixtures.directory.deletingLastPathComponent().appending(path: "imatrix/expected.json")
  return try JSONDecoder().decode([String: ExpectedImatrix].self, from: Data(contentsOf: url))
}

private func fixture(_ name: String) -> String {
  GGUFFixtures.directory.deletingLastPathComponent().appending(path: "imatrix/" + name).path
}

@Suite("llama-imatrix files")
struct ImportanceMatrixTests {
  @Test(arguments: [("small.imatrix.gguf", "gguf"), ("small.imatrix.dat", "legacy")])
  func readsWeightsAsLlamaQuantizeDoes(file: String, layout: String) throws {
    let want = try #require(try expected()[layout])
    let matrix = try ImportanceMatrix(path: fixture(file))
    #expect(matrix.layout.rawValue == layout)
    #expect(matrix.datasets == want.datasets)
    #expect(matrix.chunkCount == want.chunkCount)
    #expect(matrix.chunkSize == want.chunkSize)
    #expect(Set(matrix.weights.keys) == Set(want.weights.keys))
    for (name, bits) in want.weights {
      #expect(matrix.weights[name]?.map(\.bitPattern) == bits, "\(name)")
    }
  }

  /// A file from llama-imatrix itself, with the weights gguf-py / struct computed from it, both
  /// named by Tests/RealModels/check-imatrix.sh; skipped without them.
  @Test(.enabled(if: ProcessInfo.processInfo.environment["IMATRIX_EXPECTED"] != nil))
  func readsARealLlamaImatrixFile() throws {
    let environment = ProcessInfo.processInfo.environment
    let path = try #require(environment["IMATRIX_FILE"])
    let expectedPath = try #require(environment["IMATRIX_EXPECTED"])
    let want = try JSONDecoder().decode(
      ExpectedImatrix.self, from: Data(contentsOf: URL(fileURLWithPath: expectedPath)))
    let matrix = try ImportanceMatrix(path: path)
    #expect(matrix.datasets == want.datasets)
    #expect(matrix.chunkCount == want.chunkCount)
    #expect(matrix.chunkSize == want.chunkSize)
    #expect(Set(matrix.weights.keys) == Set(want.weights.keys))
    let same = want.weights.filter { matrix.weights[$0.key]?.map(\.bitPattern) == $0.value }.count
    #expect(same == want.weights.count, "\(same) of \(want.weights.count) entries identical")
  }

  @Test func anExpertThatSawNoTokenWeighsOne() throws {
    let matrix = try ImportanceMatrix(path: fixture("small.imatrix.gguf"))
    let weights = try #require(matrix.weights["blk.0.ffn_down_exps.weight"])
    #expect(weights.count == 12)
    #expect(weights[4..<8].allSatisfy { $0 == 1 })
  }

  struct MalformedCase: CustomTestStringConvertible, Sendable {
    let id: String
    let bytes: [UInt8]
    let message: String
    var testDescription: String { id }
  }

  static func le32(_ value: Int32) -> [UInt8] { withUnsafeBytes(of: value.littleEndian) { Array($0) } }

  static let malformed: [MalformedCase] = [
    MalformedCase(id: "no entries", bytes: le32(0), message: "has entry count 0"),
    MalformedCase(
      id: "values cut short",
      bytes: le32(1) + le32(1) + Array("w".utf8) + le32(1) + le32(4) + le32(0),
      message: "4 values of 'w' at offset 17 runs past the end"),
    MalformedCase(
      id: "name runs past the end", bytes: le32(1) + le32(100) + Array("w".utf8),
      message: "name of entry 0 at offset 8 runs past the end"),
    MalformedCase(
      id: "no values", bytes: le32(1) + le32(1) + Array("w".utf8) + le32(1) + le32(0),
      message: "tensor 'w' has 0 values, expected at least 1"),
  ]

  @Test(arguments: malformed)
  func rejectsMalformedLegacyFilesInOneLine(_ c: MalformedCase) throws {
    let path = FileManager.default.temporaryDirectory.appending(path: "imatrix-\(UUID()).dat").path
    FileManager.default.createFile(atPath: path, contents: Data(c.bytes))
    defer { try? FileManager.default.removeItem(atPath: path) }
    do {
      _ = try ImportanceMatrix(path: path)
      Issue.record("no error for \(c.id)")
    } catch {
      let message = String(describing: error)
      #expect(message.hasPrefix(path + ": "), "\(message)")
      #expect(message.contains(c.message), "\(message)")
      #expect(!message.contains("\n"))
    }
  }

  @Test func aGGUFWithoutImatrixKeysIsRefused() throws {
    // A model GGUF is not an importance matrix: llama-quantize wants the imatrix.* keys.
    let path = GGUFFixtures.path("quantized.gguf")
    #expect {
      _ = try ImportanceMatrix(path: path)
    } throws: { error in
      String(describing: error).contains("key 'imatrix.datasets' is missing")
    }
  }
}
