import Foundation
import QEngine
import QFormats
import Testing

@testable import QCompute
@testable import QToolSupport

/// One MLX setting GPTQ runs at on the tiny model (rows of 64 and 128).
struct MLXGPTQCase: Sendable, CustomTestStringConvertible {
  let bits: Int
  let group: Int
  let actOrder: Bool
  var search: MLXExport.GridSearch = .mlx
  var testDescription: String {
    "\(bits)-bit g\(group)" + (actOrder ? " act-order" : "") + (search == .weightedClip ? " weighted clip grid" : "")
  }
}

/// GPTQ into the MLX and GGUF layouts: codes decided on the layout's stored grid, written by the
/// layout's own writer unchanged, read back (through the dequantizers checked against
/// mlx.core.dequantize and gguf-py) as exactly the weights GPTQ decided.
@Suite("GPTQ into the MLX and GGUF layouts")
struct ExportGPTQTests {
  static let model = fixturesDirectory.appendingPathComponent("tiny-chat").path
  static let text = fixturesDirectory.appendingPathComponent("tiny-chat.sample.txt").path

  static func calibration() throws -> ConvertCalibration {
    try ConvertCalibration(
      checkpoint: try Checkpoint.open(model),
      settings: .init(textFile: text, context: 32, windows: 4))
  }

  static let mlxCases: [MLXGPTQCase] = [
    .init(bits: 3, group: 32, actOrder: false), .init(bits: 3, group: 32, actOrder: true),
    .init(bits: 4, group: 64, actOrder: false), .init(bits: 2, group: 128, actOrder: true),
    .init(bits: 8, group: 64, actOrder: false),
    .init(bits: 3, group: 64, actOrder: true, search: .weightedClip),
    .init(bits: 2, group: 32, actOrder: false, search: .weightedClip),
  ]

  @Test(arguments: mlxCases)
  func mlxWriterStoresGPTQsCodes(_ setting: MLXGPTQCase) throws {
    let checkpoint = try Checkpoint.open(Self.model)
    let grids = try MLXExport.gptqGrids(
      source: checkpoint.source, configData: checkpoint.configData, bits: setting.bits,
      groupSize: setting.group, search: setting.search)
    let decided = try Self.calibration().decide(onto: grids, actOrder: setting.actOrder)
    // GPTQ decides the decoder linears; the embedding keeps round to nearest. Rows of 64 are no
    // whole group of 128: those modules stay unquantized, out of the plan.
    #expect(decided.count == (setting.group == 128 ? 2 : 14))
    #expect(
      Set(grids.keys).subtracting(decided.keys)
        == (setting.group == 128 ? [] : ["model.embed_tokens.weight"]))
    let folder = try ExportFixtures.scratchFolder("gptq-mlx")
    defer { try? FileManager.default.removeItem(atPath: folder) }
    try MLXExport.exportMLX(
      source: checkpoint.source, configData: checkpoint.configData,
      sideFilesFrom: checkpoint.folder, to: folder,
      bits: setting.bits, groupSize: setting.group, decided: decided)
    let written = try Checkpoint.open(folder).dequantized().source
    for (name, codes) in decided {
      let values = try written.floats(of: name)
      #expect(values.map(\.bitPattern) == codes.dequantize().map(\.bitPattern), "\(name)")
    }
  }

  @Test(arguments: StoredBlockCaseName.all, [false, true])
  func ggufWriterStoresGPTQsCodes(_ setting: StoredBlockCaseName, actOrder: Bool) throws {
    let checkpoint = try Checkpoint.open(Self.model)
    let configData = try #require(checkpoint.configData)
    let grids = try GGUFExport.gptqGrids(
      source: checkpoint.source, configData: configData, selection: .pure(setting.mix))
    let decided = try Self.calibration().decide(onto: grids, actOrder: actOrder)
    #expect(decided.count == 14)
    let folder = try ExportFixtures.scratchFolder("gptq-gguf")
    defer { try? FileManager.default.removeItem(atPath: folder) }
    let path = folder + "/model.gguf"
    try GGUFExport.exportGGUF(
      source: checkpoint.source, configData: configData,
      to: try OutputDestination(path: path, kind: .file, replace: true, inputs: []),
      selection: .pure(setting.mix),
      decided: decided)
    try Self.expectStored(decided, in: try GGUFFile(path: path), as: setting.mix.defaultType.ggmlType)
  }

  /// Every decided tensor reads back from the GGUF file (through ggml's dequantization, rows in
  /// llama.cpp's rope order) as exactly the weights its codes give, in `type` when one is named.
  static func expectStored(_ decided: [String: StoredCodes], in file: GGUFFile, as type: GGMLType? = nil) throws {
    for (name, codes) in decided {
      let ggufName = try #require(GGUFExport.ggufName(of: name))
      let info = try #require(file.tensorInfo(named: ggufName))
      if let type { #expect(info.type == type, "\(ggufName)") }
      let decoded = try ExportFixtures.bytes(of: ggufName, in: file).withUnsafeBytes {
        try GGUFBlocks.dequantize($0, type: info.type)
      }
      var expected = codes.dequantize()
      let heads = ggufName.contains(".attn_q.") ? 4 : ggufName.contains(".attn_k.") ? 2 : nil
      if let heads {
        expected = GGUFExport.permuteRows(expected, rows: codes.grid.rows, heads: heads)
      }
      #expect(decoded.map(\.bitPattern) == expected.map(\.bitPattern), "\(ggufName)")
    }
  }

  /// GPTQ's grids weighted as llama-quantize weights by an importance matrix: by the calibration's
  /// own input energies (the Gram diagonal, which the grid maker receives), or by a given matrix
  /// (each block's d then exactly `storedGrid(importance:)`'s); the writer stores the codes
  /// unchanged either way.
  @Test(arguments: [GGUFBlockType.q4_0, .q5_1], [false, true])
  func weightedGridsReachTheWriterUnchanged(_ blockType: GGUFBlockType, fromMatrix: Bool) throws {
    let setting = try #require(StoredBlockCaseName.all.first { $0.mix.defaultType.ggmlType.rawValue == blockType.ggmlTypeID })
    let checkpoint = try Checkpoint.open(Self.model)
    let configData = try #require(checkpoint.configData)
    let calibration = try Self.calibration()
    let probe = "model.layers.0.self_attn.q_proj.weight"
    let probeColumns = try #require(checkpoint.source.info(named: probe)?.shape.last)
    let matrix = (0..<probeColumns).map { Float(1 + ($0 * 7) % 11) }
    let weighting: GGUFExport.GridWeighting =
      fromMatrix ? .matrix(["blk.0.attn_q.weight": matrix]) : .calibration
    var grids = try GGUFExport.gptqGrids(
      source: checkpoint.source, configData: configData, selection: .pure(setting.mix), weighting: weighting)
    // The energies the probe's maker is handed are its input Gram diagonal: the first block's
    // input no quantized layer has touched, so the unquantized model's Gram gives it too.
    let maker = try #require(grids[probe])
    let seen = EnergyBox()
    grids[probe] = { weights, rows, columns, energy, first in
      seen.energy = energy
      return try maker(weights, rows, columns, energy, first)
    }
    let decided = try calibration.decide(onto: grids, actOrder: false)
    let gram = try #require(try calibration.collectGrams(windows: calibration.windows.count)[probe])
    #expect(seen.energy.count == probeColumns)
    for column in 0..<probeColumns {
      let reference = gram[column, column]
      #expect(abs(Double(seen.energy[column]) - reference) <= 1e-4 * max(abs(reference), 1e-6), "column \(column)")
    }
    let weights = try checkpoint.source.floats(of: probe)
    let plain = try weights.withUnsafeBufferPointer {
      try GGUFBlocks.storedGrid($0, rows: weights.count / probeColumns, columns: probeColumns, type: blockType)
    }
    let probeGrid = try #require(decided[probe]).grid
    #expect(probeGrid.scales != plain.scales)
    if fromMatrix {
      let expected = try weights.withUnsafeBufferPointer {
        try GGUFBlocks.storedGrid(
          $0, rows: weights.count / probeColumns, columns: probeColumns, type: blockType, importance: matrix)
      }
      #expect(probeGrid == expected)
    }
    let folder = try ExportFixtures.scratchFolder("gptq-gguf-weighted")
    defer { try? FileManager.default.removeItem(atPath: folder) }
    let path = folder + "/model.gguf"
    try GGUFExport.exportGGUF(
      source: checkpoint.source, configData: configData,
      to: try OutputDestination(path: path, kind: .file, replace: true, inputs: []),
      selection: .pure(setting.mix), decided: decided, weightedMix: true)
    try Self.expectStored(decided, in: try GGUFFile(path: path))
  }

  /// tr((W - Q) H (W - Q)ᵀ): the output error of codes for `weights` under the Gram matrix H.
  static func outputError(_ weights: [Float], _ codes: StoredCodes, gram: Matrix<Double>) -> Double {
    let delta = zip(weights, codes.dequantize()).map { Double($0) - Double($1) }
    let columns = codes.grid.columns
    var total = 0.0
    for row in 0..<codes.grid.rows {
      for i in 0..<columns {
        var inner = 0.0
        for j in 0..<columns { inner += gram[i, j] * delta[row * columns + j] }
        total += delta[row * columns + i] * inner
      }
    }
    return total
  }

  /// On the tiny model's first block (whose inputs no quantized layer has touched), GPTQ's
  /// codes have a lower output error tr((W - Q) H (W - Q)ᵀ) than round to nearest on the same
  /// layout grid, for MLX's 3-bit groups of 32 and for Q4_0 blocks.
  @Test func gptqBeatsNearestOnTheLayoutGrid() throws {
    let checkpoint = try Checkpoint.open(Self.model)
    let calibration = try Self.calibration()
    let grams = try calibration.collectGrams(windows: calibration.windows.count)
    let configData = try #require(checkpoint.configData)
    let layouts: [(String, [String: SequentialGPTQ.StoredGridMaker])] = [
      (
        "mlx",
        try MLXExport.gptqGrids(
          source: checkpoint.source, configData: configData, bits: 3, groupSize: 32)
      ),
      (
        "gguf q4_0",
        try GGUFExport.gptqGrids(
          source: checkpoint.source, configData: configData, selection: .pure(.q4_0))
      ),
      (
        "gguf q4_0 weighted by calibration",
        try GGUFExport.gptqGrids(
          source: checkpoint.source, configData: configData, selection: .pure(.q4_0), weighting: .calibration)
      ),
    ]
    for (layout, grids) in layouts {
      let decided = try calibration.decide(onto: grids, actOrder: false)
      for module in ["q_proj", "k_proj", "v_proj"] {
        let name = "model.layers.0.self_attn.\(module).weight"
        let gptq = try #require(decided[name])
        let gram = try #require(grams[name])
        let weights = try checkpoint.source.floats(of: name)
        let nearest = StoredCodes(
          grid: gptq.grid, codes: weights.withUnsafeBufferPointer { gptq.grid.nearestCodes($0) })
        func error(_ codes: StoredCodes) -> Double { Self.outputError(weights, codes, gram: gram) }
        #expect(
          error(gptq) < error(nearest),
          "\(layout) \(name): GPTQ \(error(gptq)), nearest \(error(nearest))")
      }
    }
  }

  /// With the head asked for, GPTQ decides the tied embedding last, on the MLX grid, with a
  /// lower error on the logits (under the final norm's Gram matrix of the full-precision model)
  /// than nearest rounding on the same grid; the export writes its codes as decided.
  @Test func theTiedHeadIsDecidedLast() throws {
    let checkpoint = try Checkpoint.open(Self.model)
    let calibration = try Self.calibration()
    let grids = try MLXExport.gptqGrids(
      source: checkpoint.source, configData: checkpoint.configData, bits: 3, groupSize: 32, search: .weightedClip)
    let without = try calibration.decide(onto: grids, actOrder: true)
    var steps: [String] = []
    let decided = try calibration.decide(onto: grids, actOrder: true, quantizesHead: true) { steps.append($0.tensor) }
    let head = "model.embed_tokens.weight"
    #expect(without[head] == nil)
    #expect(steps.last == head)
    #expect(Set(decided.keys) == Set(without.keys).union([head]))
    for (name, codes) in without { #expect(decided[name] == codes, "\(name)") }
    let gptq = try #require(decided[head])

    let collector = CalibrationCollector(model: calibration.model)
    try collector.start(windows: calibration.windows)
    for _ in 0..<calibration.model.blockCount { try collector.advance() }
    let gram = try collector.headGram()
    let weights = try checkpoint.source.floats(of: head)
    let nearest = StoredCodes(grid: gptq.grid, codes: weights.withUnsafeBufferPointer { gptq.grid.nearestCodes($0) })
    func logitError(_ codes: StoredCodes) -> Double { Self.outputError(weights, codes, gram: gram) }
    #expect(logitError(gptq) < 0.9 * logitError(nearest), "GPTQ \(logitError(gptq)), nearest \(logitError(nearest))")

    let folder = try ExportFixtures.scratchFolder("gptq-head")
    defer { try? FileManager.default.removeItem(atPath: folder) }
    try MLXExport.exportMLX(
      source: checkpoint.source, configData: checkpoint.configData, sideFilesFrom: checkpoint.folder, to: folder,
      bits: 3, groupSize: 32, decided: decided)
    let written = try Checkpoint.open(folder).dequantized().source
    #expect(try written.floats(of: head).map(\.bitPattern) == gptq.dequantize().map(\.bitPattern))
  }

  /// End to end: both layouts take '--method gptq' (and '--act-order') with '--calib', and what
  /// they write loads for evaluation.
  @Test(arguments: [
    ["--layout", "mlx", "--bits", "3", "--group-size", "32", "--act-order"],
    ["--layout", "gguf", "--gguf-type", "q4_0"],
    ["--layout", "gguf", "--gguf-type", "q5_1", "--act-order"],
    ["--layout", "mlx", "--bits", "4", "--group-size", "32", "--gptq-head"],
    ["--layout", "gguf", "--gguf-type", "q4_0", "--gptq-head"],
  ])
  func qconvertRunsGPTQIntoTheLayout(_ arguments: [String]) throws {
    let folder = try ExportFixtures.scratchFolder("gptq-cli")
    defer { try? FileManager.default.removeItem(atPath: folder) }
    let output = folder + (arguments[1] == "gguf" ? "/model.gguf" : "/out")
    let run = try runTool(
      "qconvert",
      [
        Self.model, "-o", output, "--method", "gptq", "--calib", Self.text, "--calib-context", "32",
        "--calib-windows", "4", "--quiet",
      ] + arguments)
    #expect(run.status == 0, "\(run.stderr)")
    let inspect = try runTool(
      "qinspect", [output, "--perplexity", Self.text, "--windows", "2", "--context", "32"])
    #expect(inspect.status == 0, "\(inspect.stderr)")
    #expect(inspect.stdout.contains("perplexity"), "\(inspect.stdout)")
  }
}

/// The stored grids against the runtimes' own tools (Fixtures/make_layout_grid_fixtures.py): the
/// grid is the one `mlx.core.quantize` and gguf-py's quantizer choose, and any codes on it read
/// back through `mlx.core.dequantize` and gguf-py's dequantizer as `StoredGrid` says, bit for bit.
@Suite("Stored grids against mlx and gguf-py")
struct StoredGridReferenceTests {
  static let fixture = ExportFixtures.path("export", "layout-grids.safetensors")

  @Test(arguments: [2, 3, 4, 8], [32, 64])
  func mlxGridAndValuesAreMLXs(bits: Int, group: Int) throws {
    let file = try SafetensorsFile(path: Self.fixture)
    let key = "mlx-b\(bits)-g\(group)"
    let weights = try file.floats(of: "weights")
    let grid = try weights.withUnsafeBufferPointer {
      try MLXAffineGrid.storedGrid(
        $0, rows: 4, columns: 128, bits: bits, groupSize: group, scaleType: .f16)
    }
    #expect(
      grid.scales.map(\.bitPattern) == (try file.floats(of: key + "/scales")).map(\.bitPattern))
    #expect(
      grid.offsets.map(\.bitPattern) == (try file.floats(of: key + "/biases")).map(\.bitPattern))
    let codes = try ExportFixtures.bytes(of: key + "/codes", in: file)
    let expected = try file.floats(of: key + "/dequantized")
    #expect(grid.dequantize(codes).map(\.bitPattern) == expected.map(\.bitPattern))
  }

  @Test(arguments: StoredBlockCaseName.all)
  func ggufGridBlocksAndValuesAreGGUFPys(_ setting: StoredBlockCaseName) throws {
    let file = try SafetensorsFile(path: Self.fixture)
    let key = "gguf-\(setting.mix.rawValue)"
    let type = setting.mix.defaultType
    let weights = try file.floats(of: "weights")
    let grid = try weights.withUnsafeBufferPointer {
      try GGUFBlocks.storedGrid($0, rows: 4, columns: 128, type: type)
    }
    #expect(grid.scales.map(\.bitPattern) == (try file.floats(of: key + "/d")).map(\.bitPattern))
    #expect(grid.offsets.map(\.bitPattern) == (try file.floats(of: key + "/m")).map(\.bitPattern))
    let decided = StoredCodes(
      grid: grid, codes: try ExportFixtures.bytes(of: key + "/codes", in: file))
    let blocks = try GGUFBlocks.encode(decided, rows: 0..<4, type: type)
    #expect(blocks == (try ExportFixtures.bytes(of: key + "/blocks", in: file)))
    let expected = try file.floats(of: key + "/dequantized")
    #expect(decided.dequantize().map(\.bitPattern) == expected.map(\.bitPattern))
  }
}

/// One whole-model GGUF type with a block grid.
struct StoredBlockCaseName: Sendable, CustomTestStringConvertible {
  let mix: GGUFMix
  var testDescription: String { mix.rawValue }
  static let all: [StoredBlockCaseName] = [.q4_0, .q4_1, .q5_0, .q5_1, .q8_0].map(
    StoredBlockCaseName.init)
}

/// What a wrapped grid maker was handed, for a test to read after the run.
private final class EnergyBox: @unchecked Sendable {
  var energy: [Float] = []
}
