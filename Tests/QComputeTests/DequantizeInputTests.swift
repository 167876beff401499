import Foundation
import QFormats
import Testing

@testable import QCompute

/// Fixtures/dequant, written by Fixtures/make_dequant_fixtures.py with gguf-py and mlx.
private let dequantFixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
  .deletingLastPathComponent().deletingLastPathComponent().appending(path: "Fixtures/dequant")

private func fixture(_ name: String) -> String { dequantFixtures.appending(path: name).path }

/// The tensor names gguf-py's expected values are stored under, in file order.
private func expectedGGUFNames() -> [String] {
  (try? SafetensorsFile(path: fixture("blocks.expected.safetensors")).tensors.map(\.name)) ?? []
}

private func expectedMLXNames() -> [String] {
  (try? SafetensorsFile(path: fixture("mlx-model.expected.safetensors")).tensors.map(\.name)) ?? []
}

@Suite("Dequantized GGUF and MLX input against gguf-py and mlx")
struct DequantizeInputTests {
  @Test func fixturesArePresent() {
    // plain.f32; one/rows/random for the five types gguf-py quantizes, one/random for the six
    // it does not; q8_0.cube.
    #expect(expectedGGUFNames().count == 1 + 5 * 3 + 6 * 2 + 1)
    #expect(expectedMLXNames().count == 7)
  }

  @Test func everyDecodableTypeIsCovered() throws {
    let file = try GGUFFile(path: fixture("blocks.gguf"))
    #expect(Set(file.quantizedTensors.map(\.type)) == GGUFBlocks.decodableTypes)
  }

  @Test(arguments: expectedGGUFNames())
  func ggufTensorMatchesGGUFPy(_ name: String) throws {
    let source = try DequantizedGGUF(wrapping: GGUFFile(path: fixture("blocks.gguf")))
    let expected = try SafetensorsFile(path: fixture("blocks.expected.safetensors"))
    let info = try #require(source.tensors.first { $0.name == name })
    let reference = try #require(expected.info(named: name))
    #expect(info.shape == reference.shape)
    #expect(info.dtype == .f32)
    let got = try source.floats(of: name)
    let want = try expected.floats(of: name)
    #expect(got.map(\.bitPattern) == want.map(\.bitPattern))
  }

  @Test func ggufListsEveryTensorInFileOrder() throws {
    let file = try GGUFFile(path: fixture("blocks.gguf"))
    let source = try DequantizedGGUF(wrapping: file)
    #expect(source.tensors.map(\.name) == file.allTensors.map(\.name))
    #expect(source.tensors.map(\.name) == expectedGGUFNames())
  }

  @Test func unsupportedBlockTypeIsRefusedByName() throws {
    let path = fixture("unsupported.gguf")
    let file = try GGUFFile(path: path)
    #expect(
      throws: DequantizeError.unsupportedBlockType(
        location: path, tensor: "blk.0.ffn_down.weight", type: "IQ2_XXS")
    ) {
      try DequantizedGGUF(wrapping: file)
    }
    let message =
      "\(DequantizeError.unsupportedBlockType(location: path, tensor: "blk.0.ffn_down.weight", type: "IQ2_XXS"))"
    #expect(message.hasPrefix(path + ": tensor 'blk.0.ffn_down.weight' is IQ2_XXS"))
    #expect(!message.contains("\n"))
  }

  @Test(
    arguments: GGMLType.allCases.filter {
      $0.isBlockQuantized && !GGUFBlocks.decodableTypes.contains($0)
    })
  func otherBlockTypesAreRefused(_ type: GGMLType) {
    let block = [UInt8](repeating: 0, count: type.bytesPerBlock)
    #expect(throws: QuantizeError.unsupportedBlockType(type: type.name)) {
      try block.withUnsafeBytes { try GGUFBlocks.dequantize($0, type: type) }
    }
  }

  @Test func partialBlockIsRefused() {
    let bytes = [UInt8](repeating: 0, count: 21)
    #expect(throws: QuantizeError.truncatedBlocks(type: "Q4_1", bytes: 21, blockBytes: 20)) {
      try bytes.withUnsafeBytes { try GGUFBlocks.dequantize($0, type: .q4_1) }
    }
  }

  @Test func checkpointOfAGGUFReadsFloats() throws {
    let checkpoint = try Checkpoint.open(fixture("blocks.gguf")).dequantized()
    #expect(checkpoint.source is DequantizedGGUF)
    #expect(checkpoint.source.tensors.count == expectedGGUFNames().count)
  }

  @Test(arguments: expectedMLXNames())
  func mlxTensorMatchesMLX(_ name: String) throws {
    let checkpoint = try Checkpoint.open(fixture("mlx-model")).dequantized()
    let source = try #require(checkpoint.source as? DequantizedMLX)
    let expected = try SafetensorsFile(path: fixture("mlx-model.expected.safetensors"))
    let info = try #require(source.tensors.first { $0.name == name })
    #expect(info == expected.info(named: name))
    let got = try source.withRawBytes(of: name) { [UInt8]($0) }
    let want = try expected.withRawBytes(of: name) { [UInt8]($0) }
    #expect(got == want)
  }

  @Test func mlxCompanionsAreHidden() throws {
    let source = try Checkpoint.open(fixture("mlx-model")).dequantized().source
    #expect(Set(source.tensors.map(\.name)) == Set(expectedMLXNames()))
    #expect(
      try #require(source as? DequantizedMLX).layers.values.map(\.bits).sorted() == [
        2, 3, 4, 5, 6, 8,
      ])
  }

  @Test(arguments: ["blocks.gguf", "mlx-model"])
  func dequantizingTwiceChangesNothing(_ name: String) throws {
    let once = try Checkpoint.open(fixture(name)).dequantized()
    let twice = try once.dequantized()
    #expect(twice.source.tensors == once.source.tensors)
    #expect(type(of: twice.source) == type(of: once.source))
  }

  @Test func mlxConfigThatContradictsTheTensorsIsRefused() throws {
    let folder = fixture("mlx-contradicts")
    let checkpoint = try Checkpoint.open(folder)
    #expect {
      try checkpoint.dequantized()
    } throws: { error in
      guard case .badMLXTensor(let location, let tensor, let reason) = error as? DequantizeError
      else { return false }
      return location == folder && tensor == "proj.weight" && reason.contains("4 bits")
    }
  }

  @Test func mlxScalesWithoutAConfigAreRefused() throws {
    let source = try SafetensorsFile(path: fixture("mlx-model/model.safetensors"))
    #expect {
      try DequantizedMLX(wrapping: source, configData: nil, location: "folder")
    } throws: { error in
      guard case .badMLXTensor(let location, _, let reason) = error as? DequantizeError else {
        return false
      }
      return location == "folder" && reason.contains("no 'quantization' block")
    }
  }

  @Test func mlxGroupSizeThatOverflowsIsRefused() throws {
    let source = try SafetensorsFile(path: fixture("mlx-model/model.safetensors"))
    let config = Data(#"{"quantization": {"bits": 8, "group_size": 4611686018427387904}}"#.utf8)
    #expect {
      try DequantizedMLX(wrapping: source, configData: config, location: "folder")
    } throws: { error in
      guard case .badMLXTensor(_, _, let reason) = error as? DequantizeError else { return false }
      return reason.contains("group size 4611686018427387904")
    }
  }

  @Test func storedSizesAreThoseOfTheFile() throws {
    let file = try GGUFFile(path: fixture("blocks.gguf"))
    let gguf = try DequantizedGGUF(wrapping: file)
    #expect(gguf.storedByteCount(of: "q4_1.rows") == 3 * 3 * 20)
    #expect(gguf.storedByteCount(of: "plain.f32") == 2 * 8 * 4)
    let mlx = try #require(
      try Checkpoint.open(fixture("mlx-model")).dequantized().source as? DequantizedMLX)
    // layers.b4: U32 [3, 16] codes, F16 [3, 2] scales and biases.
    #expect(mlx.storedByteCount(of: "layers.b4.weight") == 3 * 16 * 4 + 2 * 3 * 2 * 2)
    #expect(mlx.storedByteCount(of: "norm.weight") == 16 * 2)
  }

  @Test func plainCheckpointIsUnchanged() throws {
    let checkpoint = try Checkpoint.open(fixture("mlx-model.expected.safetensors"))
    #expect(try checkpoint.dequantized().source === checkpoint.source)
  }
}
