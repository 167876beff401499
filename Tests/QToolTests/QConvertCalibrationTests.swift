import Foundation
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

  @Test func sensitivityFallsWithBits() throws {
    let run = try runTool(
      "qconvert",
      [model, "-o", "/nonexistent/unused", "--calib", text, "--calib-context", "32", "--sensitivity", "--format", "json", "--quiet"])
    #expect(run.status == 0, "\(run.stderr)")
    struct Report: Decodable {
      struct Row: Decodable {
        var tensor: String
        var relativeErrors: [Double]
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
      #expect(zip(row.relativeErrors, row.relativeErrors.dropFirst()).allSatisfy { $0 > $1 }, "\(row.tensor)")
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
}
