import ArgumentParser
import Foundation

#if canImport(Glibc)
  import Glibc
#endif

/// How a long stage reports its progress on stderr (`--progress`).
public enum ProgressStyle: String, ExpressibleByArgument, CaseIterable, Sendable {
  /// One line rewritten in place on a terminal, `lines` otherwise.
  case auto
  /// One line per update.
  case lines
  /// One JSON object per update, for scripts (fields in Formats/progress.md).
  case json
  /// Nothing.
  case none
}

/// One progress line for a long stage (calibration windows, Gram matrices, training steps,
/// perplexity windows): how far, how fast and how long is left, in numbers rounded for people.
///
/// Every tool reports through this one type, so the line reads the same everywhere and a
/// script reads one JSON form. On a terminal the line is redrawn at most every 0.2 s and the
/// last update always shows; elsewhere each update is its own line.
public final class ProgressReporter: @unchecked Sendable {
  public let tool: String
  public let stage: String
  public let unit: String
  public let total: Int?
  let style: ProgressStyle
  let terminal: Bool
  let write: (String) -> Void
  let now: () -> Double
  let start: Double
  /// Units already done when the reporter started (a resumed run, a stage that reports its
  /// first unit only after other work); the rate and ETA count only what was done since.
  let baseline: Int
  var lastDraw = -Double.infinity
  var drawn = false
  let lock = NSLock()

  /// - Parameters:
  ///   - tool: The tool's name, which starts every line.
  ///   - stage: What is being done (`perplexity`, `Gram matrices`, `training`).
  ///   - total: How many units the stage has, when known.
  ///   - unit: The plural of what is counted (`windows`, `blocks`), or empty when the stage
  ///     names it (`training step 3/40`).
  ///   - write: Where lines go; stderr unless a test collects them.
  ///   - now: Seconds on a monotonic clock; a test gives its own.
  ///   - isTerminal: Whether stderr is a terminal (`auto` then redraws one line).
  ///   - baseline: Units already done before this reporter's clock started.
  public init(
    tool: String, stage: String, total: Int?, unit: String, style: ProgressStyle, baseline: Int = 0,
    write: ((String) -> Void)? = nil,
    now: @escaping () -> Double = { ProgressReporter.monotonicSeconds() },
    isTerminal: Bool = isatty(2) == 1
  ) {
    self.tool = tool
    self.stage = stage
    self.total = total
    self.unit = unit
    self.style = style
    self.terminal = style == .auto && isTerminal
    self.write = write ?? { FileHandleOutput.writeStderr($0) }
    self.now = now
    self.baseline = baseline
    start = now()
  }

  /// Reports `done` units finished, with an optional detail (the tensor, the loss).
  public func update(_ done: Int, detail: String? = nil) {
    lock.lock()
    defer { lock.unlock() }
    guard style != .none else { return }
    let time = now()
    let elapsed = max(time - start, 0)
    let rate = elapsed > 0 && done > baseline ? Double(done - baseline) / elapsed : nil
    let remaining = total.map { max($0 - done, 0) }
    let eta = rate.flatMap { rate in remaining.map { Double($0) / rate } }
    if style == .json {
      write(jsonLine(done: done, elapsed: elapsed, rate: rate, eta: eta, detail: detail) + "\n")
      return
    }
    let line = text(done: done, rate: rate, eta: eta, detail: detail)
    if terminal {
      let last = total.map { done >= $0 } ?? false
      guard last || time - lastDraw >= 0.2 else { return }
      lastDraw = time
      drawn = true
      write("\r\u{1B}[K" + line)
    } else {
      write(line + "\n")
    }
  }

  /// Ends the stage: on a terminal, the redrawn line is closed with a newline.
  public func finish() {
    lock.lock()
    defer { lock.unlock() }
    if terminal && drawn { write("\n") }
    drawn = false
  }

  func text(done: Int, rate: Double?, eta: Double?, detail: String?) -> String {
    var line = "\(tool): \(stage) \(done)"
    if let total { line += "/\(total)" }
    if !unit.isEmpty { line += " \(unit)" }
    if let detail, !detail.isEmpty { line += " (\(detail))" }
    if let rate { line += ", " + Self.rate(rate, unit: unit) }
    if let eta, let total, done < total { line += ", ETA " + Self.duration(eta) }
    return line
  }

  func jsonLine(done: Int, elapsed: Double, rate: Double?, eta: Double?, detail: String?) -> String {
    var fields: [String: Any] = [
      "tool": tool, "stage": stage, "done": done,
      "elapsed_s": Self.rounded(elapsed, significant: 3),
    ]
    if !unit.isEmpty { fields["unit"] = unit }
    if let total { fields["total"] = total }
    if let rate { fields["rate_per_s"] = Self.rounded(rate, significant: 3) }
    if let eta { fields["eta_s"] = Self.rounded(eta, significant: 3) }
    if let detail { fields["detail"] = detail }
    let data = (try? JSONSerialization.data(withJSONObject: fields, options: [.sortedKeys])) ?? Data()
    return String(decoding: data, as: UTF8.self)
  }

  /// `3.2 windows/s`, or `2.5 s each` below one a second; two significant digits.
  static func rate(_ perSecond: Double, unit: String) -> String {
    if perSecond >= 1 { return unit.isEmpty ? "\(number(perSecond))/s" : "\(number(perSecond)) \(unit)/s" }
    return "\(number(1 / perSecond)) s each"
  }

  /// A duration rounded for people: `8 s`, `45 s`, `4 min`, `1 h 20 min`.
  static func duration(_ seconds: Double) -> String {
    guard seconds.isFinite else { return "unknown" }
    let s = max(seconds, 0)
    if s < 10 { return "\(Int(s.rounded(.up))) s" }
    if s < 60 { return "\(Int((s / 5).rounded()) * 5) s" }
    if s < 3600 { return "\(Int((s / 60).rounded())) min" }
    let minutes = Int((s / 600).rounded()) * 10
    return minutes % 60 == 0 ? "\(minutes / 60) h" : "\(minutes / 60) h \(minutes % 60) min"
  }

  /// Two significant digits, no exponent: 0.045, 3.2, 12, 150.
  static func number(_ value: Double) -> String {
    guard value.isFinite, value > 0 else { return "0" }
    if value >= 10 { return String(Int(value.rounded())) }
    let rounded = rounded(value, significant: 2)
    let decimals = max(0, 1 - Int(floor(log10(rounded))))
    return String(format: "%.\(decimals)f", rounded)
  }

  static func rounded(_ value: Double, significant: Int) -> Double {
    guard value.isFinite, value != 0 else { return value }
    let scale = pow(10, Double(significant - 1) - floor(log10(abs(value))))
    return (value * scale).rounded() / scale
  }

  /// Seconds on a clock that never goes back.
  public static func monotonicSeconds() -> Double {
    var spec = timespec()
    clock_gettime(CLOCK_MONOTONIC, &spec)
    return Double(spec.tv_sec) + Double(spec.tv_nsec) / 1e9
  }
}
