import Foundation
import Testing

@testable import QFormats

@Suite struct GGUFReaderTests {
  @Test func typeTableMatchesGGML() throws {
    let data = try Data(contentsOf: GGUFFixtures.directory.appending(path: "ggml_types.json"))
    let rows = try GGUFFixtures.decoder.decode([GGUFTypeRow].self, from: data)
    #expect(rows.count == GGMLType.allCases.count)
    for row in rows {
      let type = try #require(GGMLType(rawValue: row.id), "ggml type \(row.name)")
      #expect(type.name == row.name)
      #expect(type.blockSize == row.blockSize, "\(row.name)")
      #expect(type.bytesPerBlock == row.bytesPerBlock, "\(row.name)")
      #expect(GGMLType(name: row.name) == type)
    }
  }

  @Test(arguments: ["all_types", "version2", "quantized"])
  func readsFixture(name: String) throws {
    let expected = try GGUFFixtures.expected(name)
    let file = try GGUFFile(path: GGUFFixtures.path(name + ".gguf"))
    #expect(file.version == expected.version)
    #expect(file.alignment == expected.alignment)
    #expect(file.dataStart == expected.dataStart)
    #expect(file.fileSize == expected.fileSize)

    #expect(file.keyValues.map(\.key) == expected.kvs.map(\.key))
    for (actual, wanted) in zip(file.keyValues, expected.kvs) {
      #expect(
        actual.value.isBitwiseEqual(to: wanted.value.value), "key \(wanted.key): \(actual.value)")
      #expect(file.values[wanted.key]?.isBitwiseEqual(to: wanted.value.value) == true)
      #expect(file.metadata[wanted.key] == wanted.value.value.rendered)
    }

    #expect(file.allTensors.map(\.name) == expected.tensors.map(\.name))
    for (actual, wanted) in zip(file.allTensors, expected.tensors) {
      #expect(actual.type.rawValue == wanted.typeId, "\(wanted.name)")
      #expect(actual.type.name == wanted.type)
      #expect(actual.shape == wanted.shape, "\(wanted.name)")
      #expect(actual.byteCount == wanted.byteCount, "\(wanted.name)")
      #expect(actual.offset == wanted.offset, "\(wanted.name)")
      let bytes = try file.withRawBytes(of: wanted.name) { Array($0) }
      #expect(bytes == GGUFFixtures.bytes(hex: wanted.hex), "\(wanted.name)")
    }

    // Plain tensors are listed with their dtype, quantized ones separately.
    let plain = expected.tensors.filter { GGMLType(name: $0.type)?.dtype != nil }
    #expect(file.tensors.map(\.name) == plain.map(\.name))
    for info in file.tensors {
      let wanted = try #require(expected.tensors.first { $0.name == info.name })
      #expect(info.dtype == GGMLType(name: wanted.type)?.dtype)
      #expect(info.shape == wanted.shape)
      #expect(info.byteCount == wanted.byteCount)
    }
    #expect(
      file.quantizedTensors.map(\.name)
        == expected.tensors.filter { GGMLType(name: $0.type)?.dtype == nil }.map(\.name))
  }

  @Test func quantizedTensorsAreSeparate() throws {
    let file = try GGUFFile(path: GGUFFixtures.path("quantized.gguf"))
    #expect(file.tensors.map(\.name) == ["blk.0.attn_norm.weight"])
    #expect(file.quantizedTensors.map(\.type) == [.q8_0, .q4_0])
    #expect(file.quantizedTensors.map(\.shape) == [[4, 64], [2, 32]])
    #expect(file.quantizedTensors.map(\.byteCount) == [4 * 2 * 34, 2 * 18])
    #expect(file.info(named: "blk.0.attn_q.weight") == nil)
    #expect(file.tensorInfo(named: "blk.0.attn_q.weight")?.type == .q8_0)
  }

  @Test func rendersMetadata() throws {
    let file = try GGUFFile(path: GGUFFixtures.path("all_types.gguf"))
    #expect(file.metadata["general.architecture"] == "tiny")
    #expect(file.metadata["test.string"] == "héllo wörld ✓ 日本語 🦙")
    #expect(file.metadata["test.bool_true"] == "true")
    #expect(file.metadata["test.i64"] == "-9223372036854775808")
    #expect(file.metadata["test.u64"] == "18446744073709551615")
    #expect(file.metadata["test.array_u8"] == "[0, 1, 2, 255]")
    #expect(file.metadata["test.array_long"] == "[20 x i32]")
    #expect(file.metadata["test.array_string"] == #"["a", "ü", "", "<0x0A>"]"#)
    #expect(file.metadata["test.nested"] == "[[1, 2], [3], [[4.5], [5.5, 6.5]]]")
    #expect(
      file.values["test.nested_strings"]
        == .array(
          elementType: .array,
          [
            .array(elementType: .string, [.string("x"), .string("ÿ")]),
            .array(elementType: .string, [.string("z")]),
          ]))
  }

  @Test func emptyTensorHasNoBytes() throws {
    let file = try GGUFFile(path: GGUFFixtures.path("all_types.gguf"))
    #expect(file.info(named: "empty")?.shape == [0, 4])
    #expect(try file.withRawBytes(of: "empty") { $0.count } == 0)
  }

  @Test func unknownTensorName() throws {
    let file = try GGUFFile(path: GGUFFixtures.path("quantized.gguf"))
    #expect(throws: GGUFError.noSuchTensor(path: file.location, tensor: "nope")) {
      try file.withRawBytes(of: "nope") { _ in () }
    }
  }

  @Test func malformedListIsComplete() {
    #expect(GGUFFixtures.malformedCases().count >= 30)
  }

  @Test(arguments: GGUFFixtures.malformedCases())
  func rejectsMalformed(_ testCase: GGUFMalformedCase) {
    let path = GGUFFixtures.path(testCase.file)
    do {
      let file = try GGUFFile(path: path)
      Issue.record("\(testCase.file) was accepted with \(file.allTensors.count) tensors")
    } catch let error as GGUFError {
      let message = error.description
      #expect(message.hasPrefix(path + ": "), "\(message)")
      #expect(message.contains(testCase.message), "\(message)")
      #expect(!message.contains("\n"))
    } catch {
      Issue.record("unexpected error \(error)")
    }
  }

  @Test func rejectsDirectoriesAndMissingFiles() {
    #expect(
      throws: GGUFError.badHeader(
        path: GGUFFixtures.path("malformed"), defect: "is not a regular file")
    ) {
      try GGUFFile(path: GGUFFixtures.path("malformed"))
    }
    #expect(throws: GGUFError.system(path: "/nonexistent/x.gguf", call: "open", errno: ENOENT)) {
      try GGUFFile(path: "/nonexistent/x.gguf")
    }
  }
}

@Suite struct GGUFHostileInputTests {
  private func fixtureBytes(_ name: String) throws -> [UInt8] {
    Array(try Data(contentsOf: URL(fileURLWithPath: GGUFFixtures.path(name))))
  }

  /// Every prefix of a valid file either fails cleanly or, once all tensor data is present, parses.
  @Test(arguments: ["all_types.gguf", "quantized.gguf"])
  func everyTruncationFailsCleanly(name: String) throws {
    let bytes = try fixtureBytes(name)
    let file = try GGUFFile(path: GGUFFixtures.path(name))
    let required = file.allTensors.map { file.dataStart + $0.offset + $0.byteCount }.max() ?? 0
    for length in 0...bytes.count {
      let parsed = bytes.withUnsafeBytes { raw in
        Result {
          try GGUFHeader(bytes: UnsafeRawBufferPointer(rebasing: raw[..<length]), path: name)
        }
      }
      switch parsed {
      case .success: #expect(length >= required, "prefix of \(length) bytes parsed")
      case .failure(let error):
        #expect(length < required, "prefix of \(length) bytes: \(error)")
        #expect(error is GGUFError)
      }
    }
  }

  /// Overwriting any header byte with extreme values never crashes or over-allocates.
  @Test(arguments: ["all_types.gguf", "quantized.gguf"])
  func corruptHeaderBytesFailCleanly(name: String) throws {
    var bytes = try fixtureBytes(name)
    let dataStart = try GGUFFile(path: GGUFFixtures.path(name)).dataStart
    for offset in 0..<dataStart {
      let original = bytes[offset]
      for replacement: UInt8 in [0x00, 0x7F, 0x80, 0xFF] where replacement != original {
        bytes[offset] = replacement
        let result = bytes.withUnsafeBytes { raw in
          Result { try GGUFHeader(bytes: raw, path: name) }
        }
        if case .failure(let error) = result { #expect(error is GGUFError) }
      }
      bytes[offset] = original
    }
  }
}
