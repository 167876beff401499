/// A plain-text table with aligned columns, for the `table` output format.
public struct TextTable {
  public enum Alignment: Sendable { case left, right }

  private let headers: [String]
  private let alignments: [Alignment]
  private var rows: [[String]] = []

  public init(headers: [String], alignments: [Alignment]) {
    self.headers = headers
    self.alignments = alignments
  }

  public mutating func append(_ row: [String]) {
    rows.append(row)
  }

  /// The table as lines, header first, columns separated by two spaces, no trailing blanks.
  public func render(indent: String = "") -> String {
    var widths = headers.map(\.count)
    for row in rows {
      for (i, cell) in row.enumerated() where i < widths.count {
        widths[i] = max(widths[i], cell.count)
      }
    }
    func line(_ cells: [String]) -> String {
      var parts: [String] = []
      for (i, cell) in cells.enumerated() {
        let pad = String(repeating: " ", count: max(0, widths[i] - cell.count))
        let isLast = i == cells.count - 1
        switch alignments[i] {
        case .left: parts.append(isLast ? cell : cell + pad)
        case .right: parts.append(pad + cell)
        }
      }
      return indent + parts.joined(separator: "  ")
    }
    var out = line(headers) + "\n"
    for row in rows { out += line(row) + "\n" }
    return out
  }
}

/// Compact human-readable numbers: `134.5M`, `1.2K`, `999`.
public func humanCount(_ value: Int) -> String {
  let v = Double(value)
  switch value {
  case ..<1000: return "\(value)"
  case ..<1_000_000: return formatFixed(v / 1e3, 1) + "K"
  case ..<1_000_000_000: return formatFixed(v / 1e6, 1) + "M"
  default: return formatFixed(v / 1e9, 2) + "G"
  }
}

/// Byte sizes in decimal units, as file managers and model hubs show them.
public func humanBytes(_ value: Int) -> String {
  let v = Double(value)
  switch value {
  case ..<1000: return "\(value) B"
  case ..<1_000_000: return formatFixed(v / 1e3, 1) + " kB"
  case ..<1_000_000_000: return formatFixed(v / 1e6, 1) + " MB"
  default: return formatFixed(v / 1e9, 2) + " GB"
  }
}

/// `value` with exactly `digits` decimals, without Foundation's locale handling.
public func formatFixed(_ value: Double, _ digits: Int) -> String {
  guard value.isFinite else { return value.isNaN ? "nan" : (value > 0 ? "inf" : "-inf") }
  var scale = 1.0
  for _ in 0..<digits { scale *= 10 }
  let rounded = (abs(value) * scale).rounded(.toNearestOrEven)
  let whole = Int(rounded / scale)
  let frac = Int(rounded - Double(whole) * scale)
  let sign = value < 0 && rounded != 0 ? "-" : ""
  if digits == 0 { return sign + "\(whole)" }
  let fracText = String(frac)
  return sign + "\(whole)." + String(repeating: "0", count: digits - fracText.count) + fracText
}
