import Foundation
import Testing

@testable import QToolSupport

/// The shared progress line: rounding, ETA, the terminal and line forms, and the JSON form.
@Suite struct ProgressReporterTests {
  final class Collected: @unchecked Sendable {
    var text = ""
    var time = 100.0
  }

  func reporter(_ style: ProgressStyle, terminal: Bool, total: Int? = 10, _ collected: Collected) -> ProgressReporter {
    ProgressReporter(
      tool: "qx", stage: "perplexity", total: total, unit: "windows", style: style,
      write: { collected.text += $0 }, now: { collected.time }, isTerminal: terminal)
  }

  @Test func linesCarryRateAndRoundedETA() {
    let collected = Collected()
    let progress = reporter(.auto, terminal: false, collected)
    collected.time += 4
    progress.update(2)
    collected.time += 36
    progress.update(10)
    progress.finish()
    // 2 windows in 4 s: 0.5/s, 8 left: 16 s, rounded to 15 s; the last line has no ETA.
    #expect(collected.text == """
      qx: perplexity 2/10 windows, 2.0 s each, ETA 15 s
      qx: perplexity 10/10 windows, 4.0 s each

      """)
  }

  @Test func rateCountsOnlyTheUnitsDoneSinceTheReporterStarted() {
    let collected = Collected()
    // A resumed run: 40 of 100 steps were done before; then 2 steps in 10 s.
    let progress = ProgressReporter(
      tool: "qx", stage: "training step", total: 100, unit: "", style: .lines, baseline: 40,
      write: { collected.text += $0 }, now: { collected.time }, isTerminal: false)
    progress.update(40)
    collected.time += 10
    progress.update(42)
    // 5 s a step, 58 left: 290 s, about 5 min; the first line has no rate yet.
    #expect(collected.text == """
      qx: training step 40/100
      qx: training step 42/100, 5.0 s each, ETA 5 min

      """)
  }

  @Test func terminalRedrawsOneLineAndEndsIt() {
    let collected = Collected()
    let progress = reporter(.auto, terminal: true, collected)
    collected.time += 1
    progress.update(5)
    collected.time += 0.05
    progress.update(6)  // too soon after the last draw: skipped
    collected.time += 1
    progress.update(10)
    progress.finish()
    #expect(collected.text == "\r\u{1B}[Kqx: perplexity 5/10 windows, 5.0 windows/s, ETA 1 s"
      + "\r\u{1B}[Kqx: perplexity 10/10 windows, 4.9 windows/s\n")
  }

  @Test func jsonLinesAreMachineReadable() throws {
    let collected = Collected()
    let progress = reporter(.json, terminal: true, collected)
    collected.time += 3
    progress.update(3, detail: "loss 2.5")
    progress.finish()
    let line = try #require(collected.text.split(separator: "\n").first)
    let object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
    #expect(object["tool"] as? String == "qx")
    #expect(object["done"] as? Int == 3)
    #expect(object["total"] as? Int == 10)
    #expect(object["rate_per_s"] as? Double == 1)
    #expect(object["eta_s"] as? Double == 7)
    #expect(object["elapsed_s"] as? Double == 3)
    #expect(object["detail"] as? String == "loss 2.5")
    #expect(collected.text.hasSuffix("\n"))
  }

  @Test func noneWritesNothing() {
    let collected = Collected()
    let progress = reporter(.none, terminal: true, collected)
    collected.time += 1
    progress.update(1)
    progress.finish()
    #expect(collected.text.isEmpty)
  }

  @Test func unknownTotalHasNoETA() {
    let collected = Collected()
    let progress = reporter(.lines, terminal: true, total: nil, collected)
    collected.time += 2
    progress.update(50)
    #expect(collected.text == "qx: perplexity 50 windows, 25 windows/s\n")
  }

  @Test(arguments: [
    (0.4, "1 s"), (9.2, "10 s"), (12.0, "10 s"), (58.0, "60 s"), (61.0, "1 min"), (150.0, "3 min"),
    (3599.0, "60 min"), (3600.0, "1 h"), (4800.0, "1 h 20 min"), (.infinity, "unknown"),
  ])
  func durationsAreRoundedForPeople(_ seconds: Double, _ text: String) {
    #expect(ProgressReporter.duration(seconds) == text)
  }

  @Test(arguments: [(0.0449, "0.045"), (3.21, "3.2"), (9.96, "10"), (12.4, "12"), (151.0, "151"), (1.0, "1.0")])
  func numbersHaveTwoSignificantDigits(_ value: Double, _ text: String) {
    #expect(ProgressReporter.number(value) == text)
  }
}

extension ProgressReporterTests {
  /// A stage that names what it counts has no unit: `training step 3/4`.
  @Test func stageWithoutUnit() throws {
    let collected = Collected()
    let progress = ProgressReporter(
      tool: "qx", stage: "training step", total: 4, unit: "", style: .lines,
      write: { collected.text += $0 }, now: { collected.time }, isTerminal: false)
    collected.time += 1
    progress.update(3, detail: "loss 2.5")
    #expect(collected.text == "qx: training step 3/4 (loss 2.5), 3.0/s, ETA 1 s\n")
  }
}
