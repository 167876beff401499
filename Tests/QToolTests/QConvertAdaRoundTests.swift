import Foundation
import Testing

/// `qconvert --method adaround` end to end on the tiny-chat fixture.
@Suite struct QConvertAdaRoundTests {
  let model = fixturesDirectory.appendingPathComponent("tiny-chat").path
  let text = fixturesDirectory.appendingPathComponent("tiny-chat.sample.txt").path

  struct Report: Decodable {
    struct Perplexity: Decodable { var perplexity: Double }
    var perplexity: Perplexity?
  }

  func perplexity(_ folder: String) throws -> Double {
    let run = try runTool("qinspect", [folder, "--format", "json", "--perplexity", text, "--context", "32"])
    #expect(run.status == 0, "\(run.stderr)")
    let report = try #require(try JSONDecoder().decode([Report].self, from: Data(run.stdout.utf8)).first)
    return try #require(report.perplexity).perplexity
  }

  /// Mean KL divergence of the next-token distributions from the float model's (`qdiff --data`).
  func meanKL(_ folder: String) throws -> Double {
    let run = try runTool("qdiff", [model, folder, "--format", "json", "--data", text, "--context", "32"])
    #expect(run.status == 1, "\(run.stderr)")
    struct Report: Decodable {
      struct DataResult: Decodable { var mean_kl: Double }
      var data: DataResult
    }
    return try JSONDecoder().decode(Report.self, from: Data(run.stdout.utf8)).data.mean_kl
  }

  /// At 2 bits round-to-nearest hurts the tiny model, so AdaRound must recover a clear share of
  /// the perplexity gap to the float model and land clearly closer to it (KL) to pass, and
  /// every block's output error must fall below its grid's nearest rounding.
  @Test(arguments: ["gram", "weights"])
  func adaRoundPackLoadsAndBeatsRoundToNearest(grid: String) throws {
    let work = FileManager.default.temporaryDirectory.appendingPathComponent("qconvert-adaround-\(UUID().uuidString)")
    defer { try? FileManager.default.removeItem(at: work) }
    let adaround = work.appendingPathComponent("adaround").path
    let rtn = work.appendingPathComponent("rtn").path
    let common = ["--bits", "2", "--group-size", "32"]
    let a = try runTool(
      "qconvert",
      [
        model, "-o", adaround, "--method", "adaround", "--calib", text, "--calib-context", "32", "--calib-windows", "6",
        "--adaround-iterations", "120", "--adaround-grid", grid,
      ] + common)
    #expect(a.status == 0, "\(a.stderr)")
    let reports = a.stderr.split(separator: "\n").filter { $0.contains("output error: nearest") }
    #expect(reports.count == 2, "\(a.stderr)")
    for line in reports {
      let numbers = line.split(separator: " ").compactMap { Double($0.trimmingCharacters(in: .punctuationCharacters)) }
      let nearest = try #require(numbers.dropLast().last)
      let learned = try #require(numbers.last)
      #expect(learned < nearest, "\(line)")
    }
    let b = try runTool("qconvert", [model, "-o", rtn, "--quiet"] + common)
    #expect(b.status == 0, "\(b.stderr)")
    let verify = try runTool("qinspect", [adaround, "--verify"])
    #expect(verify.status == 0, "\(verify.stderr)")
    let jsonl = try runTool("qinspect", [adaround, "--format", "jsonl"])
    #expect(jsonl.stdout.contains(#""method":"adaround""#))
    let full = try perplexity(model)
    let learned = try perplexity(adaround)
    let nearest = try perplexity(rtn)
    #expect(nearest > full)
    #expect(learned < nearest - 0.25 * (nearest - full), "perplexity: float \(full), AdaRound \(learned), RTN \(nearest)")
    let learnedKL = try meanKL(adaround)
    let nearestKL = try meanKL(rtn)
    #expect(learnedKL < 0.75 * nearestKL, "mean KL to the float model: AdaRound \(learnedKL), RTN \(nearestKL)")
  }

  @Test func adaRoundWithoutTextIsAUsageError() throws {
    let run = try runTool("qconvert", [model, "-o", "/nonexistent/unused", "--method", "adaround"])
    #expect(run.status == 64)
    #expect(run.stderr.contains("--calib"))
  }
}
