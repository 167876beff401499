import Foundation
import Testing

/// End-to-end runs of the built `qinspect`: stdout, stderr and exit status.
@Suite struct QInspectTests {
  struct Expected: Decodable {
    struct Tensor: Decodable {
      var name: String
      var dtype: String
      var shape: [Int]
      var min, max, mean, std, absmax: Double
      var zero_fraction: Double
    }
    var tensors: [Tensor]
  }

  struct Report: Decodable {
    struct Tensor: Decodable {
      var name: String
      var dtype: String
      var shape: [Int]
      var parameters: Int
      var bytes: Int
      var component: String
      var stats: Stats?
    }
    struct Stats: Decodable {
      var count: Int
      var min, max, mean, std, absmax, zero_fraction: Double?
      var nan, inf: Int
    }
    struct Totals: Decodable {
      var tensors, parameters, bytes: Int
      var bits_per_weight: Double?
    }
    struct Architecture: Decodable {
      var family: String
      var kind: String
      var parameters: [String: Int]
    }
    var path: String
    var format: String
    var architecture: Architecture?
    var totals: Totals
    var tensors: [Tensor]
  }

  func fixture(_ name: String) -> String {
    fixturesDirectory.appendingPathComponent(name).path
  }

  func expected(_ name: String) throws -> Expected {
    let data = try Data(contentsOf: fixturesDirectory.appendingPathComponent("\(name).expected.json"))
    return try JSONDecoder().decode(Expected.self, from: data)
  }

  @Test(arguments: ["tiny-llama", "tiny-llava"])
  func jsonStatisticsMatchNumpy(model: String) throws {
    let run = try runTool("qinspect", ["--stats", "--format", "json", fixture(model)])
    #expect(run.status == 0, "\(run.stderr)")
    #expect(run.stderr.isEmpty)
    let reports = try JSONDecoder().decode([Report].self, from: Data(run.stdout.utf8))
    let report = try #require(reports.first)
    let reference = try expected(model)
    #expect(report.tensors.map(\.name) == reference.tensors.map(\.name))
    #expect(report.totals.tensors == reference.tensors.count)
    #expect(report.totals.bits_per_weight == 16)
    for (ours, theirs) in zip(report.tensors, reference.tensors) {
      #expect(ours.dtype == theirs.dtype)
      #expect(ours.shape == theirs.shape)
      #expect(ours.parameters == theirs.shape.reduce(1, *))
      #expect(ours.bytes == ours.parameters * 2)
      let stats = try #require(ours.stats)
      #expect(stats.count == ours.parameters)
      #expect(stats.nan == 0 && stats.inf == 0)
      let pairs: [(Double?, Double)] = [
        (stats.min, theirs.min), (stats.max, theirs.max), (stats.std, theirs.std),
        (stats.absmax, theirs.absmax), (stats.zero_fraction, theirs.zero_fraction),
      ]
      for (a, b) in pairs {
        let value = try #require(a)
        #expect(abs(value - b) <= 1e-9 * Swift.max(abs(b), 1e-12), "\(ours.name)")
      }
      let mean = try #require(stats.mean)
      #expect(abs(mean - theirs.mean) <= 1e-9 * theirs.absmax, "\(ours.name)")
    }
  }

  @Test func recognisesTheVisionLanguageLayout() throws {
    let run = try runTool("qinspect", ["--format", "json", fixture("tiny-llava")])
    #expect(run.status == 0)
    let report = try #require(try JSONDecoder().decode([Report].self, from: Data(run.stdout.utf8)).first)
    let architecture = try #require(report.architecture)
    #expect(architecture.family == "llava")
    #expect(architecture.kind == "vision-language")
    #expect(architecture.parameters["text.num_hidden_layers"] == 2)
    let components = Dictionary(grouping: report.tensors, by: \.component).mapValues(\.count)
    #expect(components["vision-tower"] == 39)
    #expect(components["projector"] == 4)
    #expect(components["language-model"] == 21)
  }

  @Test func tableCollapsesRepeatedLayers() throws {
    let run = try runTool("qinspect", [fixture("tiny-llama")])
    #expect(run.status == 0)
    #expect(run.stdout.contains("architecture: llama (decoder-llm)"))
    #expect(run.stdout.contains("model.layers.#.mlp.down_proj.weight"))
    #expect(run.stdout.contains("x2"))
    #expect(run.stdout.contains("total: 20 tensors"))
  }

  @Test func readsStdin() throws {
    let data = try Data(
      contentsOf: fixturesDirectory.appendingPathComponent("tiny-llama/model.safetensors"))
    let run = try runTool("qinspect", ["--format", "jsonl", "-"], stdin: data)
    #expect(run.status == 0, "\(run.stderr)")
    let lines = run.stdout.split(separator: "\n")
    #expect(lines.count == 20)
    #expect(lines.first?.contains(#""path":"-""#) == true)
  }

  @Test func tsvHasAHeaderAndOneRowPerTensor() throws {
    let run = try runTool(
      "qinspect", ["--stats", "--format", "tsv", "--filter", "norm", fixture("tiny-llama")])
    #expect(run.status == 0)
    let lines = run.stdout.split(separator: "\n").map { $0.split(separator: "\t", omittingEmptySubsequences: false) }
    #expect(lines.first?.count == 16)
    #expect(lines.first?.first == "path")
    #expect(lines.count == 1 + 5)  // two layers x two norms, plus the final norm
    #expect(lines.dropFirst().allSatisfy { $0.count == 16 && $0[3] == "64" })
  }

  @Test func headerOnlyAndStatsConflict() throws {
    let run = try runTool("qinspect", ["--stats", "--header-only", fixture("tiny-llama")])
    #expect(run.status == 64)
    #expect(run.stderr.contains("--header-only"))
  }

  @Test func badInputIsReportedAndTheOthersStillListed() throws {
    let bad = fixture("malformed/lfs_pointer.safetensors")
    let run = try runTool("qinspect", ["--format", "jsonl", bad, fixture("tiny-llama")])
    #expect(run.status == 1)
    #expect(run.stderr.contains("lfs_pointer.safetensors"))
    #expect(run.stderr.contains("Git LFS pointer"))
    #expect(run.stderr.split(separator: "\n").count == 1)
    #expect(run.stdout.split(separator: "\n").count == 20)
  }

  @Test func missingFileIsOneLine() throws {
    let run = try runTool("qinspect", ["/nonexistent/model.safetensors"])
    #expect(run.status == 1)
    #expect(run.stdout.isEmpty)
    #expect(run.stderr == "qinspect: /nonexistent/model.safetensors: no such file or folder\n")
  }

  @Test func readsHDF5() throws {
    let run = try runTool("qinspect", ["--format", "json", fixture("hdf5/keras3.weights.h5")])
    #expect(run.status == 0, "\(run.stderr)")
    let report = try #require(try JSONDecoder().decode([Report].self, from: Data(run.stdout.utf8)).first)
    #expect(report.format == "hdf5")
    #expect(!report.tensors.isEmpty)
  }

  @Test func readsGGUF() throws {
    let run = try runTool("qinspect", ["--format", "json", fixture("gguf/quantized.gguf")])
    #expect(run.status == 0, "\(run.stderr)")
    let report = try #require(try JSONDecoder().decode([Report].self, from: Data(run.stdout.utf8)).first)
    #expect(report.format == "gguf")
    #expect(report.tensors.contains { $0.dtype == "Q8_0" })
  }

  @Test func filtersAndMeasuresQuantizedGGUFTensors() throws {
    let path = fixture("dequant/blocks.gguf")
    let run = try runTool("qinspect", ["--format", "json", "--stats", "--filter", "^q4_1\\.", path])
    #expect(run.status == 0, "\(run.stderr)")
    let report = try #require(try JSONDecoder().decode([Report].self, from: Data(run.stdout.utf8)).first)
    #expect(report.tensors.map(\.name) == ["q4_1.one", "q4_1.rows", "q4_1.random"])
    #expect(report.tensors.allSatisfy { $0.dtype == "Q4_1" && $0.stats != nil })
  }
}
