import Foundation
import QFormats
import Testing

/// `qconvert --calib` end to end on the tiny-chat fixture (a tiny Llama with a real tokenizer).
@Suite struct QConvertCalibrationTests {
  let model = fixturesDirectory.appendingPathComponent("tiny-chat").path
  let text = fixturesDirectory.appendingPathComponent("tiny-chat.sample.txt").path

  func temporaryFolder() -> URL {
    FileManager.default.temporaryDirectory.appendingPathComponent("qconvert-calib-\(UUID().uuidString)")
  }

  /// Mean KL divergence of the next-token distributions from the float model's, by `qdiff --data`.
  func meanKL(_ folder: String) throws -> Double {
    let run = try runTool("qdiff", [model, folder, "--format", "json", "--data", text, "--context", "32"])
    #expect(run.status == 1, "\(run.stderr)")
    struct Report: Decodable {
      struct DataResult: Decodable { var mean_kl: Double }
      var data: DataResult
    }
    return try JSONDecoder().decode(Report.self, from: Data(run.stdout.utf8)).data.mean_kl
  }

  @Test func gptqLandsCloserToTheFloatModelThanRoundToNearest() throws {
    let work = temporaryFolder()
    defer { try? FileManager.default.removeItem(at: work) }
    let gptq = work.appendingPathComponent("gptq").path
    let rtn = work.appendingPathComponent("rtn").path
    let common = ["--bits", "3", "--group-size", "32", "--quiet"]
    let a = try runTool(
      "qconvert",
      [model, "-o", gptq, "--method", "gptq", "--calib", text, "--calib-context", "32", "--calib-windows", "6"] + common)
    #expect(a.status == 0, "\(a.stderr)")
    let b = try runTool("qconvert", [model, "-o", rtn] + common)
    #expect(b.status == 0, "\(b.stderr)")
    let verify = try runTool("qinspect", [gptq, "--verify"])
    #expect(verify.status == 0, "\(verify.stderr)")
    let json = try runTool("qinspect", [gptq, "--format", "jsonl"])
    #expect(json.stdout.contains(#""method":"gptq""#))
    let gptqKL = try meanKL(gptq)
    let rtnKL = try meanKL(rtn)
    #expect(gptqKL < rtnKL, "mean KL to the float model: GPTQ \(gptqKL), RTN \(rtnKL)")
  }

  @Test func speedQTrainingLowersTheDistanceToTheFloatModel() throws {
    let work = temporaryFolder()
    defer { try? FileManager.default.removeItem(at: work) }
    let trained = work.appendingPathComponent("speedq").path
    let rounded = work.appendingPathComponent("bilevel").path
    let a = try runTool(
      "qconvert",
      [
        model, "-o", trained, "--bits", "2", "--method", "speedq", "--calib", text, "--calib-context", "32",
        "--calib-windows", "6", "--qat-steps", "20", "--qat-lr", "2e-3", "--quiet",
      ])
    #expect(a.status == 0, "\(a.stderr)")
    let b = try runTool("qconvert", [model, "-o", rounded, "--bits", "2", "--method", "bilevel", "--quiet"])
    #expect(b.status == 0, "\(b.stderr)")
    let jsonl = try runTool("qinspect", [trained, "--format", "jsonl"])
    #expect(jsonl.stdout.contains(#""grid":"bilevel""#))
    let trainedKL = try meanKL(trained)
    let roundedKL = try meanKL(rounded)
    #expect(trainedKL < roundedKL, "mean KL to the float model: SPEED-Q \(trainedKL), bilevel RTN \(roundedKL)")
  }

  /// `--qat-init gptq` starts training from GPTQ's codes on the bilevel grid: before any step
  /// the pack is closer to the float model than the clip search's start, and training runs on.
  @Test func speedQStartsFromGPTQWhenAsked() throws {
    let work = temporaryFolder()
    defer { try? FileManager.default.removeItem(at: work) }
    let common = [
      model, "--bits", "2", "--method", "speedq", "--calib", text, "--calib-context", "32",
      "--calib-windows", "6", "--qat-lr", "2e-3", "--progress", "lines",
    ]
    let clip = work.appendingPathComponent("clip").path
    let gptq = work.appendingPathComponent("gptq").path
    let trained = work.appendingPathComponent("trained").path
    let a = try runTool("qconvert", common + ["-o", clip, "--qat-steps", "0"])
    #expect(a.status == 0, "\(a.stderr)")
    let b = try runTool("qconvert", common + ["-o", gptq, "--qat-steps", "0", "--qat-init", "gptq"])
    #expect(b.status == 0, "\(b.stderr)")
    #expect(b.stderr.contains("GPTQ initialisation") && !b.stderr.contains("Gram matrices"), "\(b.stderr)")
    let c = try runTool("qconvert", common + ["-o", trained, "--qat-steps", "3", "--qat-init", "gptq"])
    #expect(c.status == 0 && c.stderr.contains("step 3/3"), "\(c.stderr)")
    let clipKL = try meanKL(clip)
    let gptqKL = try meanKL(gptq)
    #expect(gptqKL < clipKL, "mean KL to the float model before training: GPTQ start \(gptqKL), clip start \(clipKL)")
    let refused = try runTool("qconvert", [model, "-o", gptq, "--force", "--qat-init", "gptq"])
    #expect(refused.status == 64 && refused.stderr.contains("'--qat-init' applies to '--method speedq' only"))
  }

  /// An embedding ruled onto a bilevel grid trains on it with the linears and is written on it.
  @Test func speedQTrainsAnEmbeddingRuledOntoABilevelGrid() throws {
    let work = temporaryFolder()
    defer { try? FileManager.default.removeItem(at: work) }
    let output = work.appendingPathComponent("speedq").path
    let run = try runTool(
      "qconvert",
      [
        model, "-o", output, "--bits", "2", "--method", "speedq", "--calib", text, "--calib-context", "32",
        "--calib-windows", "4", "--qat-steps", "2", "--qat-lr", "2e-3", "--rule", "embed_tokens=bilevel4",
      ])
    #expect(run.status == 0, "\(run.stderr)")
    #expect(run.stderr.contains("model.embed_tokens.weight: 4-bit g32 bilevel speedq"), "\(run.stderr)")
  }

  /// A rule on the embedding changes the grid the student trains against, and the pack holds it.
  @Test func speedQTrainsAgainstTheEmbeddingGridOfTheRules() throws {
    let work = temporaryFolder()
    try FileManager.default.createDirectory(at: work, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: work) }
    let output = work.appendingPathComponent("speedq").path
    let checkpoint = work.appendingPathComponent("state.safetensors").path
    let common = [
      model, "-o", output, "--bits", "2", "--method", "speedq", "--calib", text, "--calib-context", "32",
      "--calib-windows", "4", "--qat-steps", "4", "--qat-lr", "2e-3", "--qat-checkpoint", checkpoint,
      "--force", "--rule", "embed_tokens=8g32:sym",
    ]
    let first = try runTool("qconvert", common + ["--qat-stop-after", "2"])
    #expect(first.status == 0, "\(first.stderr)")
    #expect(first.stderr.contains("step 2/4") && !first.stderr.contains("step 3/4"), "\(first.stderr)")
    let second = try runTool("qconvert", common)
    #expect(second.status == 0, "\(second.stderr)")
    #expect(!second.stderr.contains("step 2/4") && second.stderr.contains("step 4/4"), "\(second.stderr)")
    let jsonl = try runTool("qinspect", [output, "--format", "jsonl"])
    let embedding = try #require(jsonl.stdout.split(separator: "\n").first { $0.contains(#""name":"model.embed_tokens.weight""#) })
    #expect(embedding.contains(#""bits":8"#) && embedding.contains(#""grid":"symmetric""#), "\(embedding)")
    let linear = try #require(jsonl.stdout.split(separator: "\n").first { $0.contains(#""name":"model.layers.0.mlp.up_proj.weight""#) })
    #expect(linear.contains(#""grid":"bilevel""#) && linear.contains(#""method":"speedq""#), "\(linear)")
    // The checkpoint remembers the embedding grid: the default SPEED-Q policy cannot resume from it.
    let other = try runTool("qconvert", Array(common.dropLast(2)))
    #expect(other.status != 0)
    #expect(other.stderr.contains("embedding=8-bit"), "\(other.stderr)")
  }

  /// The pack holds the norm weights as trained, in the stored dtype; `--qat-freeze-norms`
  /// writes them as stored.
  @Test func speedQWritesTheTrainedNormsUnlessFrozen() throws {
    let work = temporaryFolder()
    defer { try? FileManager.default.removeItem(at: work) }
    let common = [
      model, "--bits", "2", "--method", "speedq", "--calib", text, "--calib-context", "32",
      "--calib-windows", "4", "--qat-steps", "3", "--qat-lr", "2e-3", "--quiet",
    ]
    let trained = work.appendingPathComponent("trained").path
    let frozen = work.appendingPathComponent("frozen").path
    let a = try runTool("qconvert", common + ["-o", trained])
    #expect(a.status == 0, "\(a.stderr)")
    let b = try runTool("qconvert", common + ["-o", frozen, "--qat-freeze-norms"])
    #expect(b.status == 0, "\(b.stderr)")
    let stored = try Checkpoint.open(model).source
    let trainedSource = try Checkpoint.open(trained).source
    let frozenSource = try Checkpoint.open(frozen).source
    for name in ["model.layers.0.input_layernorm.weight", "model.layers.1.post_attention_layernorm.weight", "model.norm.weight"] {
      let original = try stored.floats(of: name)
      #expect(try trainedSource.floats(of: name) != original, "\(name) is as stored")
      #expect(try frozenSource.floats(of: name) == original, "\(name) changed")
      let storedType = stored.tensors.first { $0.name == name }?.dtype
      #expect(trainedSource.tensors.first { $0.name == name }?.dtype == storedType)
    }
    let misplaced = try runTool("qconvert", [model, "-o", frozen, "--force", "--qat-freeze-norms"])
    #expect(misplaced.status != 0 && misplaced.stderr.contains("--qat-freeze-norms"), "\(misplaced.stderr)")
  }

  /// `--target-bpw` under speedq allocates bilevel grids by sensitivity and each linear is trained
  /// and written on its own; `--rule ...=keep` keeps a linear out of training; a rule asking for
  /// a grid the training cannot reproduce is refused by name.
  @Test func speedQTrainsEachLinearOnTheGridItsBudgetGives() throws {
    let work = temporaryFolder()
    defer { try? FileManager.default.removeItem(at: work) }
    let output = work.appendingPathComponent("mixed").path
    let common = [
      model, "-o", output, "--bits", "2", "--method", "speedq", "--calib", text, "--calib-context", "32",
      "--calib-windows", "4", "--qat-steps", "2", "--qat-lr", "2e-3", "--quiet", "--force",
    ]
    let run = try runTool("qconvert", common + ["--target-bpw", "3.4", "--rule", "layers.1.mlp.up_proj=keep"])
    #expect(run.status == 0, "\(run.stderr)")
    let jsonl = try runTool("qinspect", [output, "--format", "jsonl"])
    let linears = jsonl.stdout.split(separator: "\n").filter { $0.contains("_proj.weight\"") }
    #expect(linears.count == 14, "\(jsonl.stdout)")
    let kept = linears.filter { $0.contains("layers.1.mlp.up_proj") }
    #expect(kept.count == 1 && !kept[0].contains(#""grid""#), "\(kept)")
    let trained = linears.filter { !$0.contains("layers.1.mlp.up_proj") }
    #expect(trained.allSatisfy { $0.contains(#""grid":"bilevel""#) && $0.contains(#""method":"speedq""#) }, "\(trained)")
    #expect(trained.contains { $0.contains(#""bits":2"#) } && trained.contains { !$0.contains(#""bits":2"#) }, "\(trained)")
    let refused = try runTool("qconvert", common + ["--rule", "layers.0.mlp.down_proj=4"])
    #expect(refused.status != 0)
    #expect(refused.stderr.contains("model.layers.0.mlp.down_proj.weight") && refused.stderr.contains("bilevel2"), "\(refused.stderr)")
  }

  @Test func sensitivityFallsWithBits() throws {
    let run = try runTool(
      "qconvert",
      [model, "-o", "/nonexistent/unused", "--calib", text, "--calib-context", "32", "--sensitivity", "--format", "json", "--quiet"])
    #expect(run.status == 0, "\(run.stderr)")
    struct Report: Decodable {
      struct Row: Decodable {
        var tensor: String
        var relativeErrors: [Double?]
        enum CodingKeys: String, CodingKey {
          case tensor
          case relativeErrors = "relative_errors"
        }
      }
      var rows: [Row]
    }
    let report = try JSONDecoder().decode(Report.self, from: Data(run.stdout.utf8))
    #expect(report.rows.count == 14)
    for row in report.rows {
      let errors = row.relativeErrors.compactMap { $0 }
      #expect(errors.count == 4 && zip(errors, errors.dropFirst()).allSatisfy { $0 > $1 }, "\(row.tensor)")
    }
  }

  @Test func targetBitsPerWeightPlansWithinTheBudget() throws {
    let run = try runTool(
      "qconvert",
      [model, "-o", "/nonexistent/unused", "--calib", text, "--calib-context", "32", "--target-bpw", "3.5", "--dry-run", "--quiet"])
    #expect(run.status == 0, "\(run.stderr)")
    #expect(run.stdout.contains("allocated") || run.stdout.contains("affine"))
  }

  @Test(arguments: [
    ["--method", "gptq"], ["--method", "speedq"], ["--sensitivity"], ["--target-bpw", "3"], ["--act-order"],
  ])
  func calibratedOptionsWithoutTextAreUsageErrors(arguments: [String]) throws {
    let run = try runTool("qconvert", [model, "-o", "/nonexistent/unused"] + arguments)
    #expect(run.status == 64)
    #expect(!run.stderr.isEmpty)
  }

  /// GPTQ's own options are refused with one line naming them wherever they would be ignored
  /// or are out of range.
  @Test(arguments: [
    (["--method", "rtn", "--gptq-damping", "0.1"], "--gptq-damping"),
    (["--method", "gptq", "--gptq-damping", "-0.5"], "--gptq-damping"),
    (["--method", "rtn", "--gptq-head"], "--gptq-head"),
    (["--method", "gptq", "--gptq-regroup"], "--gptq-regroup"),
    (["--method", "gptq", "--layout", "mlx", "--act-order", "--gptq-regroup"], "--gptq-regroup"),
  ])
  func gptqOptionsOutOfPlaceAreUsageErrors(arguments: [String], option: String) throws {
    let run = try runTool("qconvert", [model, "-o", "/nonexistent/unused", "--calib", text] + arguments)
    #expect(run.status == 64)
    #expect(run.stderr.contains(option), "\(run.stderr)")
  }

  @Test(arguments: [["--method", "gptq", "--qat-stop-after", "3"], ["--method", "speedq", "--qat-stop-after", "-1"]])
  func stoppingTrainingNeedsSpeedQAndACount(arguments: [String]) throws {
    let run = try runTool("qconvert", [model, "-o", "/nonexistent/unused", "--calib", text] + arguments)
    #expect(run.status == 64)
    #expect(run.stderr.contains("--qat-stop-after"), "\(run.stderr)")
  }
}
