import Foundation
@testable import QCompute
import QFormats
@testable import QToolSupport
import Testing

/// `qconvert --layout gguf --imatrix`: Q4_0, Q4_1, Q5_0 and Q5_1 tensors named in the matrix are encoded by
/// `GGUFBlocks.encode(_:type:importance:)` (checked against ggml in QComputeTests), the others as
/// without it; what cannot be honoured is refused before any file is made.
@Suite struct ExportGGUFImportanceTests {
  /// Weighted tensors, by GGUF name, and their row lengths in tiny-llama.
  static let weighted = ["blk.0.attn_q.weight": 64, "blk.0.ffn_down.weight": 128]

  static func importance(columns: Int, seed: Int) -> [Float] {
    (0..<columns).map { Float(($0 * 37 + seed * 11) % 23 + 1) / 4 }
  }

  /// A legacy (`--output-format dat`) importance matrix: entry count, then per entry its name,
  /// ncall and values (already `mean * ncall`), as llama-imatrix writes it.
  static func writeLegacyMatrix(_ entries: [(name: String, weights: [Float])], to path: String) throws {
    var data = Data()
    func int32(_ value: Int) { withUnsafeBytes(of: Int32(value).littleEndian) { data.append(contentsOf: $0) } }
    int32(entries.count)
    for (name, weights) in entries {
      int32(name.utf8.count)
      data.append(contentsOf: Array(name.utf8))
      int32(1)
      int32(weights.count)
      for weight in weights { withUnsafeBytes(of: weight.bitPattern.littleEndian) { data.append(contentsOf: $0) } }
    }
    try data.write(to: URL(fileURLWithPath: path))
  }

  func matrix(in folder: String, columns: [String: Int] = weighted) throws -> String {
    let path = folder + "/tiny.imatrix.dat"
    try Self.writeLegacyMatrix(
      columns.sorted { $0.key < $1.key }.enumerated().map { ($1.key, Self.importance(columns: $1.value, seed: $0)) },
      to: path)
    return path
  }

  func convert(_ folder: String, _ name: String, _ arguments: [String]) throws -> (status: Int32, stderr: String, path: String) {
    let output = folder + "/" + name
    let run = try runTool("qconvert", [ExportFixtures.tinyLlama, "-o", output, "--layout", "gguf", "--quiet"] + arguments)
    return (run.status, run.stderr, output)
  }

  @Test(arguments: [GGUFBlockType.q4_0, .q4_1, .q5_0, .q5_1])
  func weightedTensorsAreEncodedByTheirImportance(type: GGUFBlockType) throws {
    let folder = try ExportFixtures.scratchFolder("gguf-imatrix")
    defer { try? FileManager.default.removeItem(atPath: folder) }
    let typeName = type.rawValue.lowercased()
    let withMatrix = try convert(folder, "weighted.gguf", ["--gguf-type", typeName, "--gguf-pure", "--imatrix", try matrix(in: folder)])
    try #require(withMatrix.status == 0, "\(withMatrix.stderr)")
    let plain = try convert(folder, "plain.gguf", ["--gguf-type", typeName, "--gguf-pure"])
    try #require(plain.status == 0, "\(plain.stderr)")
    let weighted = try GGUFFile(path: withMatrix.path)
    let unweighted = try GGUFFile(path: plain.path)
    // The permuted source rows, as llama.cpp's converter writes them (gguf-py, in Fixtures/export).
    let reference = try SafetensorsFile(path: ExportFixtures.path("export", "gguf-q8_0-expected.safetensors"))
    for (index, (name, columns)) in Self.weighted.sorted(by: { $0.key < $1.key }).enumerated() {
      let values = try reference.floats(of: name + "/f32")
      let expected = try values.withUnsafeBufferPointer {
        try GGUFBlocks.encode($0, type: type, importance: Self.importance(columns: columns, seed: index))
      }
      let stored = try weighted.withRawBytes(of: name) { [UInt8]($0) }
      #expect(stored == expected, "\(name)")
      #expect(try unweighted.withRawBytes(of: name) { [UInt8]($0) } != stored, "\(name) is weighted")
    }
    // The file records the matrix as llama-quantize does (a legacy file names no dataset or chunks).
    #expect(weighted.values["quantize.imatrix.file"] == .string(folder + "/tiny.imatrix.dat"))
    #expect(weighted.values["quantize.imatrix.entries_count"] == .uint32(2))
    #expect(weighted.values["quantize.imatrix.dataset"] == nil && weighted.values["quantize.imatrix.chunks_count"] == nil)
    #expect(unweighted.values["quantize.imatrix.file"] == nil)
    // A tensor the matrix does not name is encoded as without one.
    for name in ["blk.1.attn_v.weight", "blk.0.attn_k.weight"] {
      #expect(try weighted.withRawBytes(of: name) { [UInt8]($0) } == unweighted.withRawBytes(of: name) { [UInt8]($0) })
    }
  }

  @Test func q8_0IgnoresTheMatrixAsLlamaQuantizeDoes() throws {
    let folder = try ExportFixtures.scratchFolder("gguf-imatrix-q8")
    defer { try? FileManager.default.removeItem(atPath: folder) }
    let withMatrix = try convert(folder, "weighted.gguf", ["--gguf-type", "q8_0", "--imatrix", try matrix(in: folder)])
    try #require(withMatrix.status == 0, "\(withMatrix.stderr)")
    let plain = try convert(folder, "plain.gguf", ["--gguf-type", "q8_0"])
    try #require(plain.status == 0, "\(plain.stderr)")
    let weighted = try GGUFFile(path: withMatrix.path)
    let unweighted = try GGUFFile(path: plain.path)
    let names = weighted.tensors.map(\.name) + weighted.quantizedTensors.map(\.name)
    #expect(names == unweighted.tensors.map(\.name) + unweighted.quantizedTensors.map(\.name))
    #expect(names.count > 2)
    for name in names {
      #expect(try weighted.withRawBytes(of: name) { [UInt8]($0) } == unweighted.withRawBytes(of: name) { [UInt8]($0) }, "\(name)")
    }
    // The matrix is recorded all the same, as llama-quantize records it.
    #expect(weighted.values["quantize.imatrix.entries_count"] == .uint32(2))
  }

  /// Each refusal is one line naming what cannot be done, and leaves no file.
  @Test(arguments: [
    (["--gguf-type", "iq4_nl"], "is stored as IQ4_NL"),
    (["--gguf-type", "q4_0", "wrong-columns"], "has 64 columns, but the importance matrix gives it 65 weights"),
  ])
  func whatCannotBeHonouredIsRefused(arguments: [String], named: String) throws {
    let folder = try ExportFixtures.scratchFolder("gguf-imatrix-refused")
    defer { try? FileManager.default.removeItem(atPath: folder) }
    let columns = arguments.last == "wrong-columns" ? ["blk.0.attn_q.weight": 65] : Self.weighted
    let run = try convert(
      folder, "out.gguf", arguments.filter { $0 != "wrong-columns" } + ["--imatrix", try matrix(in: folder, columns: columns)])
    #expect(run.status != 0)
    #expect(run.stderr.split(separator: "\n").count == 1, "\(run.stderr)")
    #expect(run.stderr.contains(named), "\(run.stderr)")
    #expect(!FileManager.default.fileExists(atPath: run.path))
  }

  /// With GPTQ the matrix chooses each block's d as llama-quantize would (the weighted grid of
  /// the source rows, permuted for rope as the file stores them), GPTQ decides the codes on it,
  /// and the file records the matrix.
  @Test func gptqDecidesOnTheGridTheMatrixWeights() throws {
    let folder = try ExportFixtures.scratchFolder("gguf-imatrix-gptq")
    defer { try? FileManager.default.removeItem(atPath: folder) }
    let model = fixturesDirectory.appendingPathComponent("tiny-chat").path
    let source = try Checkpoint.open(model).source
    let name = "model.layers.0.self_attn.q_proj.weight"
    let shape = try #require(source.info(named: name)?.shape)
    let path = try matrix(in: folder, columns: ["blk.0.attn_q.weight": shape[1]])
    let output = folder + "/gptq.gguf"
    let run = try runTool(
      "qconvert",
      [model, "-o", output, "--layout", "gguf", "--gguf-type", "q4_0", "--gguf-pure", "--quiet", "--method", "gptq",
       "--calib", fixturesDirectory.appendingPathComponent("tiny-chat.sample.txt").path, "--calib-context", "32",
       "--calib-windows", "4", "--imatrix", path])
    try #require(run.status == 0, "\(run.stderr)")
    let file = try GGUFFile(path: output)
    #expect(file.values["quantize.imatrix.file"] == .string(path))
    let permuted = GGUFExport.permuteRows(try source.floats(of: name), rows: shape[0], heads: 4)
    let grid = try permuted.withUnsafeBufferPointer {
      try GGUFBlocks.storedGrid(
        $0, rows: shape[0], columns: shape[1], type: .q4_0, importance: Self.importance(columns: shape[1], seed: 0))
    }
    let stored = try file.withRawBytes(of: "blk.0.attn_q.weight") { [UInt8]($0) }
    #expect(stored.count == grid.scales.count * 18)
    stored.withUnsafeBytes { raw in
      for block in 0..<grid.scales.count {
        let d = GGUFBlocks.loadHalf(UnsafeRawBufferPointer(rebasing: raw[(block * 18)..<(block * 18 + 18)]), at: 0)
        #expect(d.bitPattern == grid.scales[block].bitPattern, "block \(block)")
      }
    }
  }

  /// Without GPTQ, `--calib` measures the matrix itself: the full-precision model's mean squared
  /// input per column of each decoder linear, recorded as llama-quantize records a file's.
  @Test func calibrationMeasuresTheMatrix() throws {
    let folder = try ExportFixtures.scratchFolder("gguf-imatrix-calib")
    defer { try? FileManager.default.removeItem(atPath: folder) }
    let model = fixturesDirectory.appendingPathComponent("tiny-chat").path
    let text = fixturesDirectory.appendingPathComponent("tiny-chat.sample.txt").path
    func convert(_ name: String, _ extra: [String]) throws -> GGUFFile {
      let run = try runTool(
        "qconvert", [model, "-o", folder + "/" + name, "--layout", "gguf", "--gguf-type", "q4_0", "--gguf-pure", "--quiet"] + extra)
      try #require(run.status == 0, "\(run.stderr)")
      return try GGUFFile(path: folder + "/" + name)
    }
    let measured = try convert("measured.gguf", ["--calib", text, "--calib-context", "32", "--calib-windows", "4"])
    let plain = try convert("plain.gguf", [])
    #expect(measured.values["quantize.imatrix.file"] == .string(text))
    #expect(measured.values["quantize.imatrix.dataset"] == .string(text))
    #expect(measured.values["quantize.imatrix.entries_count"] == .uint32(14))
    #expect(measured.values["quantize.imatrix.chunks_count"] == .uint32(4))
    let source = try Checkpoint.open(model).source
    for layer in 0..<2 {
      for (gguf, name) in [("attn_v", "self_attn.v_proj"), ("ffn_down", "mlp.down_proj")] {
        let tensor = "blk.\(layer).\(gguf).weight"
        let weighted = try measured.withRawBytes(of: tensor) { [UInt8]($0) }
        #expect(weighted != (try plain.withRawBytes(of: tensor) { [UInt8]($0) }), "\(tensor) is weighted")
        // Weighted blocks still decode within a Q4_0 step of the weights.
        let decoded = try weighted.withUnsafeBytes { try GGUFBlocks.decode($0, type: .q4_0) }
        let values = try source.floats(of: "model.layers.\(layer).\(name).weight")
        let worst = zip(values, decoded).map { abs($0 - $1) }.max() ?? .infinity
        let largest = values.map(abs).max() ?? 0
        #expect(worst <= largest / 4, "\(tensor): worst error \(worst)")
      }
    }
  }

  /// The matrix from input energies: each over the token count, by GGUF name, unnamed tensors
  /// left out.
  @Test func energiesBecomeMeanSquares() throws {
    let importance = GGUFImportance(
      energies: ["model.layers.3.mlp.up_proj.weight": [8, 2], "vision.encoder.weight": [1, 1]], tokens: 4,
      file: "calib.txt", chunkCount: 2)
    #expect(importance.weights == ["blk.3.ffn_up.weight": [2, 0.5]])
    #expect(importance.dataset == "calib.txt" && importance.chunkCount == 2)
  }

  @Test func otherLayoutsRefuseTheOption() throws {
    let folder = try ExportFixtures.scratchFolder("gguf-imatrix-layout")
    defer { try? FileManager.default.removeItem(atPath: folder) }
    let path = try matrix(in: folder)
    for layout in ["mlx", "native"] {
      let run = try runTool("qconvert", [ExportFixtures.tinyLlama, "-o", folder + "/out-" + layout, "--layout", layout, "--imatrix", path])
      #expect(run.status == 64, "\(run.stderr)")
      #expect(run.stderr.contains("'--imatrix \(path)'") && run.stderr.contains("'--layout \(layout)'"), "\(run.stderr)")
    }
  }

  @Test func theMatrixIsRecordedInLlamaQuantizesKeys() {
    let long = "/" + String(repeating: "d", count: 200) + "/m.gguf"
    let importance = GGUFImportance(weights: ["a": [1], "b": [2]], file: long, dataset: "wiki.txt", chunkCount: 32)
    let values = Dictionary(uniqueKeysWithValues: importance.keyValues.map { ($0.key, $0.value) })
    #expect(values["quantize.imatrix.file"] == .string(String(long.prefix(127))))
    #expect(values["quantize.imatrix.dataset"] == .string("wiki.txt"))
    #expect(values["quantize.imatrix.entries_count"] == .uint32(2))
    #expect(values["quantize.imatrix.chunks_count"] == .uint32(32))
  }
}
