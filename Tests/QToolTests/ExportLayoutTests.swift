import Foundation
import QCompute
import QFormats
import QToolSupport
import Testing

/// One option a layout must refuse, and the words its one-line refusal must hold.
struct LayoutRefusalCase: Sendable, CustomTestStringConvertible {
  let arguments: [String]
  let layout: String
  let named: String
  var testDescription: String { "--layout \(layout) " + arguments.joined(separator: " ") }
}

@Suite("Layouts: options refused, rules honoured, streaming")
struct ExportLayoutTests {
  static let refusals: [LayoutRefusalCase] = [
    .init(arguments: ["--method", "clip"], layout: "gguf", named: "'--method clip'"),
    .init(arguments: ["--method", "bilevel"], layout: "mlx", named: "'--method bilevel'"),
    .init(arguments: ["--rule", "down_proj=4"], layout: "gguf", named: "rule 'down_proj=4'"),
    .init(arguments: ["--rule", "mlp=bilevel2"], layout: "mlx", named: "rule 'mlp=bilevel2'"),
    .init(arguments: ["--rule", "mlp=q4_0"], layout: "mlx", named: "rule 'mlp=q4_0'"),
    .init(arguments: ["--rule", "mlp=q4_0"], layout: "native", named: "rule 'mlp=q4_0'"),
    .init(arguments: ["--rule", "mlp=4g16"], layout: "mlx", named: "rule 'mlp=4g16'"),
    .init(arguments: ["--compress", "zstd"], layout: "gguf", named: "'--compress zstd'"),
    .init(arguments: ["--compress", "zstd"], layout: "mlx", named: "'--compress zstd'"),
    .init(arguments: ["--max-shard-size", "4096"], layout: "gguf", named: "'--max-shard-size 4096'"),
    .init(arguments: ["--bits", "4"], layout: "gguf", named: "'--bits 4'"),
    .init(arguments: ["--group-size", "32"], layout: "gguf", named: "'--group-size 32'"),
    .init(arguments: ["--group-size", "16"], layout: "mlx", named: "'--group-size 16'"),
    .init(arguments: ["--gguf-type", "q4_0"], layout: "mlx", named: "'--gguf-type q4_0'"),
    .init(arguments: ["--gguf-pure"], layout: "native", named: "'--gguf-pure'"),
    .init(arguments: ["--bits", "5"], layout: "native", named: "'--bits 5'"),
    .init(arguments: ["--rule", "down_proj=6g32"], layout: "native", named: "rule 'down_proj=6g32'"),
    .init(arguments: ["--dry-run"], layout: "gguf", named: "'--dry-run'"),
    .init(arguments: ["--method", "gptq", "--calib", sampleText, "--gguf-type", "q4_k_m"], layout: "gguf", named: "'--gguf-type q4_k_m'"),
    .init(arguments: ["--method", "gptq", "--calib", sampleText, "--gguf-type", "q6_k"], layout: "gguf", named: "'--gguf-type q6_k'"),
    .init(arguments: ["--method", "gptq", "--calib", sampleText, "--gguf-type", "iq4_nl"], layout: "gguf", named: "'--gguf-type iq4_nl'"),
    .init(arguments: ["--calib", sampleText], layout: "mlx", named: "'--calib \(sampleText)'"),
    .init(arguments: ["--calib", sampleText, "--imatrix", sampleText], layout: "gguf", named: "'--calib \(sampleText)'"),
    .init(arguments: ["--method", "gptq", "--calib", sampleText, "--sensitivity"], layout: "mlx", named: "'--sensitivity'"),
    .init(arguments: ["--method", "gptq", "--calib", sampleText, "--target-bpw", "4"], layout: "gguf", named: "'--target-bpw 4.0'"),
  ]
  static let sampleText = fixturesDirectory.appendingPathComponent("tiny-chat.sample.txt").path

  /// Each refusal is one line naming the option and the layout, with the usage exit status,
  /// before any output is made.
  @Test(arguments: refusals)
  func refusesWhatTheLayoutCannotHold(_ refusal: LayoutRefusalCase) throws {
    let folder = try ExportFixtures.scratchFolder("refuse")
    defer { try? FileManager.default.removeItem(atPath: folder) }
    let output = folder + "/out"
    let run = try runTool(
      "qconvert", [ExportFixtures.tinyLlama, "-o", output, "--layout", refusal.layout] + refusal.arguments)
    #expect(run.status == 64, "\(run.stderr)")
    let lines = run.stderr.split(separator: "\n")
    #expect(lines.count == 1, "\(run.stderr)")
    #expect(run.stderr.contains(refusal.named), "\(run.stderr)")
    #expect(run.stderr.contains("'--layout \(refusal.layout)'"), "\(run.stderr)")
    #expect(!FileManager.default.fileExists(atPath: output))
  }

  @Test func eachLayoutHonoursItsOwnOptions() throws {
    var mlx = ConvertRequest()
    mlx.rules = [try ConvertRule(parsing: "down_proj=keep"), try ConvertRule(parsing: "up_proj=2g32")]
    mlx.maxShardBytes = 1 << 20
    try MLXLayout.check(mlx)
    mlx.method = "gptq"
    mlx.calibrationOptions = ["--calib text.txt"]
    try MLXLayout.check(mlx)
    mlx.bits = 6
    mlx.rules.append(try ConvertRule(parsing: "o_proj=5g32"))
    try MLXLayout.check(mlx)
    var gguf = ConvertRequest()
    gguf.method = "gptq"
    gguf.calibrationOptions = ["--calib text.txt"]
    gguf.ggufOptions = ["--gguf-type q5_1"]
    try GGUFLayout.check(gguf)
    gguf.method = "rtn"
    gguf.calibrationOptions = []
    gguf.rules = [try ConvertRule(parsing: "down_proj=keep"), try ConvertRule(parsing: "up_proj=q8_0")]
    gguf.ggufOptions = ["--gguf-type q4_k_m"]
    try GGUFLayout.check(gguf)
    var native = ConvertRequest()
    native.method = "gptq"
    native.rules = [try ConvertRule(parsing: "mlp=bilevel2")]
    native.compress = true
    native.maxShardBytes = 4096
    try QPackLayout.check(native)
  }

  // MARK: GGUF rules

  func exportGGUF(rules: [String], blockElements: Int = TensorRowBlocks.blockElements) throws
    -> (folder: String, file: GGUFFile)
  {
    let checkpoint = try Checkpoint.open(ExportFixtures.tinyLlama)
    let folder = try ExportFixtures.scratchFolder("gguf-rules")
    let path = folder + "/model.gguf"
    let output = try OutputDestination(path: path, kind: .file, replace: true, inputs: [])
    try GGUFExport.exportGGUF(
      source: checkpoint.source, configData: try ExportFixtures.tinyLlamaConfig(), to: output,
      selection: .uniform(.q4_0), rules: try rules.map { try ConvertRule(parsing: $0) },
      blockElements: blockElements)
    return (folder, try GGUFFile(path: path))
  }

  /// `keep` stores the matrix exactly as the F16 source holds it; a type rule picks the type;
  /// tensors no rule matches are as without rules.
  @Test func ggufRulesKeepAndPickTypes() throws {
    let (plainFolder, plain) = try exportGGUF(rules: [])
    defer { try? FileManager.default.removeItem(atPath: plainFolder) }
    let (folder, file) = try exportGGUF(rules: ["down_proj=keep", "up_proj=q8_0"])
    defer { try? FileManager.default.removeItem(atPath: folder) }
    let source = try SafetensorsFile(path: ExportFixtures.tinyLlama + "/model.safetensors")
    for layer in 0..<2 {
      let down = try #require(file.tensorInfo(named: "blk.\(layer).ffn_down.weight"))
      #expect(down.type == .f16)
      #expect(
        try ExportFixtures.bytes(of: "blk.\(layer).ffn_down.weight", in: file)
          == ExportFixtures.bytes(of: "model.layers.\(layer).mlp.down_proj.weight", in: source))
      #expect(file.tensorInfo(named: "blk.\(layer).ffn_up.weight")?.type == .q8_0)
      for name in ["blk.\(layer).ffn_gate.weight", "blk.\(layer).attn_q.weight"] {
        #expect(file.tensorInfo(named: name)?.type == .q4_0)
        #expect(try ExportFixtures.bytes(of: name, in: file) == ExportFixtures.bytes(of: name, in: plain))
      }
    }
  }

  @Test func ggufRuleTypeMustFitTheRows() throws {
    // The fixture's rows are 64 or 128 long: not whole 256-element K-quant blocks.
    #expect(throws: ConvertError.self) { _ = try exportGGUF(rules: ["down_proj=q4_k"]) }
  }

  /// Blocks of a few rows (whole heads for the permuted Q and K) give the file of whole tensors.
  @Test(arguments: [64, 64 * 3, 1000])
  func ggufInBlocksMatchesWholeTensors(blockElements: Int) throws {
    let (wholeFolder, _) = try exportGGUF(rules: ["down_proj=keep"])
    defer { try? FileManager.default.removeItem(atPath: wholeFolder) }
    let (folder, _) = try exportGGUF(rules: ["down_proj=keep"], blockElements: blockElements)
    defer { try? FileManager.default.removeItem(atPath: folder) }
    let whole = try Data(contentsOf: URL(fileURLWithPath: wholeFolder + "/model.gguf"))
    let blocks = try Data(contentsOf: URL(fileURLWithPath: folder + "/model.gguf"))
    #expect(whole == blocks)
  }

  /// Q and K biases (Qwen2's) are vectors whose elements take llama.cpp's rope permutation
  /// like rows; streamed, they come out as `convert_hf_to_gguf.py` writes them.
  @Test(arguments: [64, TensorRowBlocks.blockElements])
  func ggufPermutesQAndKBiases(blockElements: Int) throws {
    let folder = try ExportFixtures.scratchFolder("gguf-bias")
    defer { try? FileManager.default.removeItem(atPath: folder) }
    let tiny = try SafetensorsFile(path: ExportFixtures.tinyLlama + "/model.safetensors")
    var tensors = try tiny.tensors.map { (name: $0.name, shape: $0.shape, values: try tiny.floats(of: $0.name)) }
    // 4 query heads of 16, 2 key/value heads: 64 and 32 elements.
    let queryBias = (0..<64).map { Float($0) }
    let keyBias = (0..<32).map { Float(100 + $0) }
    tensors.append(("model.layers.0.self_attn.q_proj.bias", [64], queryBias))
    tensors.append(("model.layers.0.self_attn.k_proj.bias", [32], keyBias))
    try ExportFixtures.writeF32(tensors, to: folder + "/model.safetensors")
    let path = folder + "/model.gguf"
    try GGUFExport.exportGGUF(
      source: try SafetensorsFile(path: folder + "/model.safetensors"), configData: try ExportFixtures.tinyLlamaConfig(),
      to: try OutputDestination(path: path, kind: .file, replace: true, inputs: []), selection: .uniform(.q8_0),
      blockElements: blockElements)
    let file = try GGUFFile(path: path)
    /// llama.cpp's permute: within each head, the first and second halves interleave.
    func permuted(_ values: [Float], heads: Int) -> [Float] {
      let size = values.count / heads
      return (0..<values.count).map { index in
        let (head, within) = (index / size, index % size)
        return values[head * size + (within % 2) * (size / 2) + within / 2]
      }
    }
    #expect(try file.floats(of: "blk.0.attn_q.bias") == permuted(queryBias, heads: 4))
    #expect(try file.floats(of: "blk.0.attn_k.bias") == permuted(keyBias, heads: 2))
  }

  /// The GGUF export finds a NaN as it streams: the first of the tensor is reported with its
  /// index in the source's shape, and a refusal leaves no file.
  @Test func ggufReportsNonFiniteWhileStreaming() throws {
    let folder = try ExportFixtures.scratchFolder("gguf-nan")
    defer { try? FileManager.default.removeItem(atPath: folder) }
    let tiny = try SafetensorsFile(path: ExportFixtures.tinyLlama + "/model.safetensors")
    var tensors = try tiny.tensors.map { (name: $0.name, shape: $0.shape, values: try tiny.floats(of: $0.name)) }
    let target = try #require(tensors.firstIndex { $0.name == "model.layers.1.mlp.down_proj.weight" })
    let columns = tensors[target].shape[1]
    tensors[target].values[5 * columns + 7] = .nan
    tensors[target].values[9 * columns + 1] = .infinity
    try ExportFixtures.writeF32(tensors, to: folder + "/model.safetensors")
    let path = folder + "/model.gguf"
    var seen: [NonFiniteElement] = []
    #expect(throws: ConvertError.self) {
      try GGUFExport.exportGGUF(
        source: try SafetensorsFile(path: folder + "/model.safetensors"),
        configData: try ExportFixtures.tinyLlamaConfig(),
        to: try OutputDestination(path: path, kind: .file, replace: true, inputs: []), selection: .uniform(.q8_0),
        blockElements: 3 * columns,
        nonFinite: { element in
          seen.append(element)
          throw ConvertError.nonFinite(element)
        })
    }
    #expect(seen.map(\.tensor) == ["model.layers.1.mlp.down_proj.weight"])
    #expect(seen.first?.index == [5, 7])
    #expect(seen.first?.value.isNaN == true)
    #expect(!FileManager.default.fileExists(atPath: path))
  }

  // MARK: MLX rules and shards

  func exportMLX(
    rules: [String] = [], maxShardBytes: Int? = nil, blockElements: Int = TensorRowBlocks.blockElements
  ) throws -> String {
    let checkpoint = try Checkpoint.open(ExportFixtures.tinyLlama)
    let output = try ExportFixtures.scratchFolder("mlx-rules")
    try MLXExport.exportMLX(
      source: checkpoint.source, configData: checkpoint.configData, sideFilesFrom: nil, to: output,
      bits: 4, groupSize: 64, rules: try rules.map { try ConvertRule(parsing: $0) },
      maxShardBytes: maxShardBytes, blockElements: blockElements)
    return output
  }

  /// The rule's module is quantized like mlx.core.quantize at its settings, a kept one copied,
  /// and config.json says so per module as mlx_lm's load reads it.
  @Test func mlxRulesKeepAndPickGrids() throws {
    let folder = try exportMLX(rules: ["layers\\.0\\.mlp\\.down_proj=2g32", "self_attn\\.k_proj=keep"])
    defer { try? FileManager.default.removeItem(atPath: folder) }
    let output = try SafetensorsFile(path: folder + "/model.safetensors")
    let expected = try SafetensorsFile(path: ExportFixtures.path("export", "mlx-expected.safetensors"))
    let mlx = ExportMLXTests()
    try mlx.expectMatches(module: "model.layers.0.mlp.down_proj", setting: "b2g32", in: output, expected: expected)
    try mlx.expectMatches(module: "model.layers.0.mlp.up_proj", setting: "b4g64", in: output, expected: expected)
    let source = try SafetensorsFile(path: ExportFixtures.tinyLlama + "/model.safetensors")
    for layer in 0..<2 {
      let name = "model.layers.\(layer).self_attn.k_proj.weight"
      #expect(output.info(named: name)?.dtype == .f16)
      #expect(try ExportFixtures.bytes(of: name, in: output) == ExportFixtures.bytes(of: name, in: source))
    }
    let quantization = try #require(try ExportFixtures.readJSON(folder + "/config.json")["quantization"])
    #expect(quantization["model.layers.0.self_attn.k_proj"] == .bool(false))
    #expect(quantization["model.layers.1.self_attn.k_proj"] == .bool(false))
    #expect(quantization["model.layers.0.mlp.down_proj"]?["bits"]?.intValue == 2)
    #expect(quantization["model.layers.0.mlp.down_proj"]?["group_size"]?.intValue == 32)
    #expect(quantization["model.layers.1.mlp.down_proj"] == nil)
  }

  /// Shards hold exactly the single file's tensors, byte for byte, each shard at most the limit
  /// unless one tensor alone is larger, and the index maps every tensor to its shard.
  @Test func mlxShardsHoldTheSameTensors() throws {
    let single = try exportMLX()
    defer { try? FileManager.default.removeItem(atPath: single) }
    let limit = 20_000
    let sharded = try exportMLX(maxShardBytes: limit)
    defer { try? FileManager.default.removeItem(atPath: sharded) }
    let whole = try SafetensorsFile(path: single + "/model.safetensors")
    let index = try ExportFixtures.readJSON(sharded + "/model.safetensors.index.json")
    let weightMap = try #require(index["weight_map"]?.objectValue)
    let shardNames = Set(weightMap.values.compactMap(\.stringValue))
    #expect(shardNames.count > 1)
    #expect(!FileManager.default.fileExists(atPath: sharded + "/model.safetensors"))
    var seen = 0
    for shardName in shardNames.sorted() {
      #expect(shardName.hasPrefix("model-0000") && shardName.contains("-of-0000"))
      let shard = try SafetensorsFile(path: sharded + "/" + shardName)
      #expect(shard.metadata["format"] == "mlx")
      let bytes = shard.tensors.reduce(0) { $0 + $1.byteCount }
      #expect(bytes <= limit || shard.tensors.count == 1)
      for tensor in shard.tensors {
        #expect(weightMap[tensor.name]?.stringValue == shardName)
        #expect(try ExportFixtures.bytes(of: tensor.name, in: shard) == ExportFixtures.bytes(of: tensor.name, in: whole))
        seen += 1
      }
    }
    #expect(seen == whole.tensors.count)
    #expect(index["metadata"]?["total_size"]?.intValue == whole.tensors.reduce(0) { $0 + $1.byteCount })
  }

  /// Quantizing a few rows at a time gives the file of whole tensors, F16 and F32 sources alike
  /// (an F32 model's scales and biases sort before its words).
  @Test(arguments: [64, 64 * 3, 1000])
  func mlxInBlocksMatchesWholeTensors(blockElements: Int) throws {
    let whole = try exportMLX(rules: ["down_proj=keep"])
    defer { try? FileManager.default.removeItem(atPath: whole) }
    let blocks = try exportMLX(rules: ["down_proj=keep"], blockElements: blockElements)
    defer { try? FileManager.default.removeItem(atPath: blocks) }
    #expect(
      try Data(contentsOf: URL(fileURLWithPath: whole + "/model.safetensors"))
        == Data(contentsOf: URL(fileURLWithPath: blocks + "/model.safetensors")))

    let folder = try ExportFixtures.scratchFolder("mlx-f32-blocks")
    defer { try? FileManager.default.removeItem(atPath: folder) }
    let values: [Float] = (0..<(7 * 64)).map { index in
      let step = Float((index * 37) % 101)
      return step / 13 - 3.5
    }
    try ExportFixtures.writeF32([("a.proj.weight", [7, 64], values)], to: folder + "/in.safetensors")
    var files: [Data] = []
    for elements in [TensorRowBlocks.blockElements, blockElements] {
      let out = folder + "/out-\(elements)"
      try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
      try MLXExport.exportMLX(
        source: try SafetensorsFile(path: folder + "/in.safetensors"), configData: nil, sideFilesFrom: nil,
        to: out, bits: 3, groupSize: 32, blockElements: elements)
      files.append(try Data(contentsOf: URL(fileURLWithPath: out + "/model.safetensors")))
    }
    #expect(files[0] == files[1])
  }

  @Test func mlxRuleGroupMustFitTheRows() throws {
    let folder = try ExportFixtures.scratchFolder("mlx-rule-rows")
    defer { try? FileManager.default.removeItem(atPath: folder) }
    try ExportFixtures.writeF32([("a.proj.weight", [2, 96], [Float](repeating: 1, count: 192))], to: folder + "/in.safetensors")
    #expect(throws: ConvertError.self) {
      try MLXExport.exportMLX(
        source: try SafetensorsFile(path: folder + "/in.safetensors"), configData: nil, sideFilesFrom: nil,
        to: folder, bits: 4, groupSize: 32, rules: [try ConvertRule(parsing: "proj=4g64")])
    }
  }
}
