import Foundation
import QToolSupport
import Testing

/// The same kinds of model named in different ways.
///
/// The checkpoints are in Fixtures/naming, made by
/// `Fixtures/make_naming_fixtures.py` with transformers): a LlamaModel saved without `model.`,
/// its `model.language_model.` wrapping, BERT bare and under `bert.`, a sentence-transformers
/// folder. qinspect recognises each; qdiff pairs their tensors and maps their layers.
@Suite struct NamingToolTests {
  static let root = fixturesDirectory.appendingPathComponent("naming")
  static func path(_ name: String) -> String { root.appendingPathComponent(name).path }

  struct Report: Decodable {
    struct Architecture: Decodable {
      var family: String
      var kind: String
    }
    struct Tensor: Decodable {
      var name: String
      var component: String?
    }
    var architecture: Architecture?
    var tensors: [Tensor]
  }

  struct Recognition: CustomTestStringConvertible, Sendable {
    var folder: String
    var family: String
    var kind: String
    /// Tensors per component.
    var components: [String: Int]
    var testDescription: String { folder }
  }

  static let recognitions = [
    Recognition(
      folder: "llama-base", family: "llama", kind: "decoder-llm", components: ["language-model": 29]
    ),
    Recognition(
      folder: "llama-causal", family: "llama", kind: "decoder-llm",
      components: ["language-model": 30]),
    Recognition(
      folder: "llama-wrapped", family: "llama", kind: "decoder-llm",
      components: ["language-model": 30]),
    Recognition(
      folder: "bert", family: "bert", kind: "text-encoder", components: ["language-model": 39]),
    Recognition(
      folder: "bert-mlm", family: "bert", kind: "text-encoder",
      components: ["language-model": 37, "other": 5]),
    Recognition(
      folder: "sentence-transformers", family: "bert", kind: "text-encoder",
      components: ["language-model": 39]),
  ]

  @Test(arguments: recognitions) func qinspectShowsArchitectureAndComponents(
    _ expected: Recognition
  ) throws {
    let run = try runTool("qinspect", [Self.path(expected.folder), "--format", "json"])
    #expect(run.status == 0, "\(run.stderr)")
    let report = try #require(
      try JSONDecoder().decode([Report].self, from: Data(run.stdout.utf8)).first)
    #expect(report.architecture?.family == expected.family)
    #expect(report.architecture?.kind == expected.kind)
    let components = Dictionary(grouping: report.tensors, by: { $0.component ?? "none" }).mapValues(
      \.count)
    #expect(components == expected.components)
  }

  /// Without config.json the names alone place a prefix-less decoder's tensors.
  @Test func aPrefixlessDecoderWithoutConfigIsStillALanguageModel() throws {
    let folder = FileManager.default.temporaryDirectory.appendingPathComponent(
      "naming-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: folder) }
    try FileManager.default.copyItem(
      atPath: Self.path("llama-base/model.safetensors"),
      toPath: folder.appendingPathComponent("model.safetensors").path)
    let run = try runTool("qinspect", [folder.path, "--format", "json"])
    #expect(run.status == 0, "\(run.stderr)")
    let report = try #require(
      try JSONDecoder().decode([Report].self, from: Data(run.stdout.utf8)).first)
    #expect(report.architecture?.family == "llama")
    #expect(report.tensors.allSatisfy { $0.component == "language-model" })
  }

  @Test func aSentenceTransformersFolderOpensItsTransformerModule() throws {
    let run = try runTool("qinspect", [Self.path("sentence-transformers")])
    #expect(run.status == 0, "\(run.stderr)")
    #expect(
      run.stdout.hasPrefix(Self.path("sentence-transformers/0_Transformer") + "  (safetensors)"))
  }

  @Test func aModulesFileWithoutTransformerIsRefusedInOneLine() throws {
    let folder = FileManager.default.temporaryDirectory.appendingPathComponent(
      "naming-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: folder) }
    let modules = folder.appendingPathComponent("modules.json")
    try Data(
      #"[{"idx": 0, "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}]"#.utf8
    ).write(to: modules)
    let run = try runTool("qinspect", [folder.path])
    #expect(run.status == 1)
    #expect(
      run.stderr
        == "qinspect: \(modules.path): names no Transformer module folder; expected a list of modules, one of type sentence_transformers.models.Transformer with its folder as 'path'\n"
    )
  }

  struct Diff: Decodable {
    struct Tensor: Decodable {
      var status: String
      var oldName: String?
      var newName: String?
      enum CodingKeys: String, CodingKey {
        case status
        case oldName = "old_name"
        case newName = "new_name"
      }
    }
    var tensors: [Tensor]
    var layerSimilarity: LayerSimilarity?
    enum CodingKeys: String, CodingKey {
      case tensors
      case layerSimilarity = "layer_similarity"
    }
  }

  struct Twins: CustomTestStringConvertible, Sendable {
    var old: String
    var new: String
    var renamed: Int
    var layers: Int
    var testDescription: String { "\(old) -> \(new)" }
  }

  static let twins = [
    Twins(old: "llama-base", new: "llama-causal", renamed: 29, layers: 3),
    Twins(old: "llama-wrapped", new: "llama-causal", renamed: 29, layers: 3),
    Twins(old: "llama-causal", new: "llama-base", renamed: 29, layers: 3),
    Twins(old: "bert-mlm", new: "sentence-transformers", renamed: 37, layers: 2),
  ]

  /// Tensors pair across prefix styles with their content unchanged, and layer similarity maps
  /// each layer onto its twin with CKA 1.
  @Test(arguments: twins) func qdiffMatchesAndMapsAcrossPrefixes(_ twins: Twins) throws {
    let run = try runTool(
      "qdiff",
      [Self.path(twins.old), Self.path(twins.new), "--layer-similarity", "--format", "json"])
    #expect(run.stderr.isEmpty, "\(run.stderr)")
    let diff = try JSONDecoder().decode(Diff.self, from: Data(run.stdout.utf8))
    let renamed = diff.tensors.filter { $0.status == "renamed" }
    #expect(renamed.count == twins.renamed)
    for tensor in renamed {
      let old = try #require(tensor.oldName)
      let new = try #require(tensor.newName)
      let stem = { (name: String) in
        name.replacingOccurrences(of: "model.language_model.", with: "")
          .replacingOccurrences(of: "model.", with: "").replacingOccurrences(of: "bert.", with: "")
      }
      #expect(stem(old) == stem(new), "\(old) -> \(new)")
    }
    let similarity = try #require(diff.layerSimilarity)
    #expect(similarity.newToOld == (0..<twins.layers).map { Optional($0) })
    #expect(similarity.mapping.count == twins.layers)
    for pair in similarity.mapping {
      #expect(abs((pair.cka ?? 0) - 1) < 1e-6, "\(pair)")
    }
  }
}
