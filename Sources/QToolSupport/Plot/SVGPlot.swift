import QCompute

/// Plain SVG 1.1 figures for `qdiff --plot` and `lora-rebase --plot`: no scripts, no external
/// resources, readable in any browser and by rsvg-convert.
public enum SVGPlot {
  /// Bar direction for `bars`.
  public enum Orientation: String, Sendable, CaseIterable {
    /// One row per label, bars growing to the right: best for long tensor or layer names.
    case horizontal
    /// One column per label, bars growing upwards.
    case vertical
  }

  /// A heatmap of `values` (rows drawn top to bottom) with a colour bar and an optional path.
  ///
  /// - Parameters:
  ///   - rowTitle, columnTitle: axis titles (for a CKA matrix, the old and the new model).
  ///   - rowNames, columnNames: tick labels; indices when nil. Long axes show every k-th label.
  ///   - path: cells to join with a line in the given order, such as the chosen layer mapping as
  ///     `(row: old, column: new)` pairs.
  ///   - range: the values at the two ends of the colour scale; the finite min and max when nil.
  public static func heatmap(
    _ values: Matrix<Double>, title: String, rowTitle: String, columnTitle: String,
    rowNames: [String]? = nil, columnNames: [String]? = nil,
    path: [(row: Int, column: Int)] = [], range: ClosedRange<Double>? = nil
  ) -> String {
    let cell = min(max(520 / Double(max(values.rows, values.columns, 1)), 4), 28)
    let rowNames = rowNames ?? (0..<values.rows).map(String.init)
    let columnNames = columnNames ?? (0..<values.columns).map(String.init)
    let labelWidth = min(Double(rowNames.map(\.count).max() ?? 1) * 6.5 + 8, 160)
    let left = 30 + labelWidth
    let top = 44.0
    let plotWidth = cell * Double(values.columns)
    let plotHeight = cell * Double(values.rows)
    let columnLabelHeight = min(Double(columnNames.map(\.count).max() ?? 1) * 6 + 10, 120)
    let width = max(left + plotWidth + 110, 320)
    let height = top + plotHeight + columnLabelHeight + 30
    var canvas = SVGCanvas(width: width, height: height)
    canvas.addText(title, x: 10, y: 22, size: 15, bold: true)

    let scale = range ?? finiteRange(values.elements)
    for i in 0..<values.rows {
      for j in 0..<values.columns {
        let value = values[i, j]
        canvas.addRect(
          x: left + Double(j) * cell, y: top + Double(i) * cell, width: cell, height: cell,
          fill: Viridis.color(normalized(value, scale)),
          tooltip: "\(rowNames[i]) / \(columnNames[j]): \(format(value))")
      }
    }
    canvas.addRect(
      x: left, y: top, width: plotWidth, height: plotHeight, fill: "none", stroke: "#333333",
      strokeWidth: 0.8)

    let rowStep = labelStep(count: values.rows, cell: cell, textSize: 12)
    for i in stride(from: 0, to: values.rows, by: rowStep) {
      canvas.addText(
        rowNames[i], x: left - 4, y: top + (Double(i) + 0.5) * cell + 3.5, size: 10, anchor: .end)
    }
    let columnStep = labelStep(count: values.columns, cell: cell, textSize: 12)
    for j in stride(from: 0, to: values.columns, by: columnStep) {
      let x = left + (Double(j) + 0.5) * cell + 3.5
      let y = top + plotHeight + 6
      canvas.addText(columnNames[j], x: x, y: y, size: 10, anchor: .end, rotation: -90)
    }
    canvas.addText(
      rowTitle, x: 14, y: top + plotHeight / 2, size: 12, anchor: .middle, rotation: -90)
    canvas.addText(
      columnTitle, x: left + plotWidth / 2, y: top + plotHeight + columnLabelHeight + 18, size: 12,
      anchor: .middle)

    let points = path.filter {
      (0..<values.rows).contains($0.row) && (0..<values.columns).contains($0.column)
    }.map { (x: left + (Double($0.column) + 0.5) * cell, y: top + (Double($0.row) + 0.5) * cell) }
    canvas.addPolyline(
      points, stroke: "#e8384f", width: max(cell / 8, 1.5), markerRadius: max(cell / 5, 2))

    addColorBar(
      to: &canvas, x: left + plotWidth + 24, y: top, height: max(plotHeight, 120), range: scale)
    return canvas.document
  }

  /// Small heatmaps side by side, one per matrix, with each row's assigned column outlined:
  /// the head-similarity matrices of the mapped layer pairs and their Hungarian assignments.
  ///
  /// All panels share one colour scale (`range`, or the finite min and max of all values).
  public static func heatmapGrid(
    _ matrices: [Matrix<Double>], assignments: [[Int?]], panelTitles: [String], title: String,
    rowTitle: String = "old head", columnTitle: String = "new head",
    range: ClosedRange<Double>? = nil
  ) -> String {
    let largest = matrices.map { max($0.rows, $0.columns) }.max() ?? 1
    let cell = min(max(150 / Double(max(largest, 1)), 3), 16)
    let panelSize = cell * Double(largest)
    let panelWidth = panelSize + 24
    let panelHeight = panelSize + 34
    let perRow = max(1, min(matrices.count, 6))
    let panelRows = (matrices.count + perRow - 1) / perRow
    let left = 30.0
    let top = 44.0
    let gridWidth = Double(perRow) * panelWidth
    let width = max(left + gridWidth + 110, 320)
    let height = max(top + Double(panelRows) * panelHeight + 30, 200)
    var canvas = SVGCanvas(width: width, height: height)
    canvas.addText(title, x: 10, y: 22, size: 15, bold: true)
    canvas.addText(
      "rows: \(rowTitle), columns: \(columnTitle); outlined: assignment", x: 10, y: 37, size: 10)

    let scale = range ?? finiteRange(matrices.flatMap(\.elements))
    for (index, matrix) in matrices.enumerated() {
      let originX = left + Double(index % perRow) * panelWidth
      let originY = top + Double(index / perRow) * panelHeight + 16
      let panelTitle = index < panelTitles.count ? panelTitles[index] : "\(index)"
      canvas.addText(panelTitle, x: originX, y: originY - 4, size: 10)
      for i in 0..<matrix.rows {
        for j in 0..<matrix.columns {
          canvas.addRect(
            x: originX + Double(j) * cell, y: originY + Double(i) * cell, width: cell,
            height: cell, fill: Viridis.color(normalized(matrix[i, j], scale)),
            tooltip: "\(rowTitle) \(i) / \(columnTitle) \(j): \(format(matrix[i, j]))")
        }
      }
      canvas.addRect(
        x: originX, y: originY, width: cell * Double(matrix.columns),
        height: cell * Double(matrix.rows), fill: "none", stroke: "#333333", strokeWidth: 0.6)
      let assignment = index < assignments.count ? assignments[index] : []
      for (i, column) in assignment.enumerated() {
        guard let column, i < matrix.rows, (0..<matrix.columns).contains(column) else { continue }
        canvas.addRect(
          x: originX + Double(column) * cell + 0.5, y: originY + Double(i) * cell + 0.5,
          width: max(cell - 1, 1), height: max(cell - 1, 1), fill: "none", stroke: "#e8384f",
          strokeWidth: max(cell / 6, 1))
      }
    }
    addColorBar(
      to: &canvas, x: left + gridWidth + 24, y: top + 16,
      height: max(Double(panelRows) * panelHeight - 40, 120), range: scale)
    return canvas.document
  }

  /// A bar chart, such as the quantization error per layer or per tensor.
  public static func bars(
    _ values: [Double], labels: [String], title: String, valueTitle: String,
    orientation: Orientation = .horizontal
  ) -> String {
    let count = values.count
    let labels = (0..<count).map { $0 < labels.count ? labels[$0] : "\($0)" }
    let finite = values.filter(\.isFinite)
    let low = min(finite.min() ?? 0, 0)
    var high = max(finite.max() ?? 1, 0)
    if high == low { high = low + 1 }
    let labelLength = min(Double(labels.map(\.count).max() ?? 1) * 6.2 + 10, 260)
    let top = 44.0
    let length = 420.0

    switch orientation {
    case .horizontal:
      let band = min(max(360 / Double(max(count, 1)), 9), 22)
      let left = 10 + labelLength
      let width = left + length + 90
      let height = top + band * Double(count) + 50
      var canvas = SVGCanvas(width: width, height: height)
      canvas.addText(title, x: 10, y: 22, size: 15, bold: true)
      let zero = left + (0 - low) / (high - low) * length
      for (index, value) in values.enumerated() {
        let y = top + Double(index) * band
        let end = left + ((value.isFinite ? value : 0) - low) / (high - low) * length
        canvas.addRect(
          x: min(zero, end), y: y + band * 0.15, width: abs(end - zero), height: band * 0.7,
          fill: Viridis.color(0.35), tooltip: "\(labels[index]): \(format(value))")
        canvas.addText(
          labels[index], x: left - 4, y: y + band / 2 + 3.5, size: min(band * 0.75, 11),
          anchor: .end)
        canvas.addText(
          format(value), x: max(zero, end) + 3, y: y + band / 2 + 3.5, size: min(band * 0.7, 10))
      }
      let axisY = top + band * Double(count) + 4
      canvas.addLine(x1: zero, y1: top, x2: zero, y2: axisY)
      canvas.addLine(x1: left, y1: axisY, x2: left + length, y2: axisY)
      for (value, text) in ticks(low: low, high: high) {
        let x = left + (value - low) / (high - low) * length
        canvas.addLine(x1: x, y1: axisY, x2: x, y2: axisY + 4)
        canvas.addText(text, x: x, y: axisY + 15, size: 9, anchor: .middle)
      }
      canvas.addText(valueTitle, x: left + length / 2, y: axisY + 34, size: 12, anchor: .middle)
      return canvas.document

    case .vertical:
      let band = min(max(560 / Double(max(count, 1)), 6), 28)
      let left = 70.0
      let width = max(left + band * Double(count) + 30, 320)
      let height = top + length * 0.75 + labelLength + 20
      let plotHeight = length * 0.75
      var canvas = SVGCanvas(width: width, height: height)
      canvas.addText(title, x: 10, y: 22, size: 15, bold: true)
      let bottom = top + plotHeight
      let zero = bottom - (0 - low) / (high - low) * plotHeight
      for (index, value) in values.enumerated() {
        let x = left + Double(index) * band
        let end = bottom - ((value.isFinite ? value : 0) - low) / (high - low) * plotHeight
        canvas.addRect(
          x: x + band * 0.15, y: min(zero, end), width: band * 0.7, height: abs(end - zero),
          fill: Viridis.color(0.35), tooltip: "\(labels[index]): \(format(value))")
        canvas.addText(
          labels[index], x: x + band / 2 + 3.5, y: bottom + 6, size: min(band * 0.75, 10),
          anchor: .end, rotation: -90)
      }
      canvas.addLine(x1: left, y1: zero, x2: left + band * Double(count), y2: zero)
      canvas.addLine(x1: left - 2, y1: top, x2: left - 2, y2: bottom)
      for (value, text) in ticks(low: low, high: high) {
        let y = bottom - (value - low) / (high - low) * plotHeight
        canvas.addLine(x1: left - 6, y1: y, x2: left - 2, y2: y)
        canvas.addText(text, x: left - 8, y: y + 3, size: 9, anchor: .end)
      }
      canvas.addText(valueTitle, x: 14, y: top + plotHeight / 2, size: 12, anchor: .middle, rotation: -90)
      return canvas.document
    }
  }

  /// Several documents from this type stacked top to bottom in one SVG file, as nested `<svg>`
  /// elements (valid SVG 1.1), so one `--plot FILE.svg` can hold every figure.
  public static func stacked(_ documents: [String]) -> String {
    var offset = 0.0
    var width = 0.0
    var parts: [String] = []
    for document in documents {
      guard let start = document.range(of: "<svg ") else { continue }
      let root = document[start.lowerBound...]
      let figureWidth = attribute("width", in: root) ?? 0
      let figureHeight = attribute("height", in: root) ?? 0
      let nested = root.replacingOccurrences(
        of: "<svg ", with: "<svg x=\"0\" y=\"\(SVGCanvas.number(offset))\" ", maxCount: 1)
      parts.append(nested.trimmingTrailingWhitespace)
      offset += figureHeight
      width = max(width, figureWidth)
    }
    let w = SVGCanvas.number(width)
    let h = SVGCanvas.number(offset)
    return """
      <?xml version="1.0" encoding="UTF-8" standalone="no"?>
      <svg xmlns="http://www.w3.org/2000/svg" version="1.1" width="\(w)" height="\(h)" viewBox="0 0 \(w) \(h)">
      <rect x="0" y="0" width="\(w)" height="\(h)" fill="#ffffff"/>
      \(parts.joined(separator: "\n"))
      </svg>

      """
  }

  // MARK: - Helpers

  private static func addColorBar(
    to canvas: inout SVGCanvas, x: Double, y: Double, height: Double, range: ClosedRange<Double>
  ) {
    let steps = 48
    let step = height / Double(steps)
    for index in 0..<steps {
      let t = 1 - (Double(index) + 0.5) / Double(steps)
      canvas.addRect(
        x: x, y: y + Double(index) * step, width: 14, height: step + 0.3,
        fill: Viridis.color(t))
    }
    canvas.addRect(
      x: x, y: y, width: 14, height: height, fill: "none", stroke: "#333333", strokeWidth: 0.6)
    let span = range.upperBound - range.lowerBound
    for (value, text) in ticks(low: range.lowerBound, high: range.upperBound) {
      let ty = y + height - (span > 0 ? (value - range.lowerBound) / span : 0) * height
      canvas.addLine(x1: x + 14, y1: ty, x2: x + 18, y2: ty)
      canvas.addText(text, x: x + 21, y: ty + 3.5, size: 9)
    }
  }

  /// About five round tick values between `low` and `high`.
  private static func ticks(low: Double, high: Double) -> [(value: Double, text: String)] {
    guard low.isFinite, high.isFinite, high > low else {
      return low.isFinite ? [(low, format(low))] : []
    }
    var result: [(value: Double, text: String)] = []
    let rough = (high - low) / 5
    let magnitude = pow10(decimalExponent(rough))
    let step = [1.0, 2, 2.5, 5, 10].map { $0 * magnitude }.first { $0 >= rough } ?? rough
    var value = (low / step).rounded(.up) * step
    var emitted = 0
    while value <= high + step * 1e-9, emitted < 12 {
      result.append((value, format(abs(value) < step * 1e-9 ? 0 : value)))
      value += step
      emitted += 1
    }
    return result
  }

  private static func finiteRange(_ values: [Double]) -> ClosedRange<Double> {
    let finite = values.filter(\.isFinite)
    guard let low = finite.min(), let high = finite.max() else { return 0...1 }
    return low < high ? low...high : (low - 0.5)...(high + 0.5)
  }

  private static func normalized(_ value: Double, _ range: ClosedRange<Double>) -> Double {
    let span = range.upperBound - range.lowerBound
    guard value.isFinite else { return .nan }
    return span > 0 ? (value - range.lowerBound) / span : 0.5
  }

  private static func labelStep(count: Int, cell: Double, textSize: Double) -> Int {
    max(1, Int((textSize / cell).rounded(.up)))
  }

  /// A short human-readable number: four significant digits, exponent form when very large or
  /// small.
  static func format(_ value: Double) -> String {
    guard value.isFinite else { return value.isNaN ? "NaN" : (value > 0 ? "inf" : "-inf") }
    if value == 0 { return "0" }
    let magnitude = abs(value)
    if magnitude >= 1e-3 && magnitude < 1e5 {
      let decimals = max(0, 3 - Int(decimalExponent(magnitude)))
      return fixed(value, decimals: decimals)
    }
    var exponent = Int(decimalExponent(magnitude))
    var mantissa = (value / pow10(Double(exponent)) * 100).rounded() / 100
    if abs(mantissa) >= 10 {
      // 9.999 rounds up to 10: move to the next power of ten.
      mantissa /= 10
      exponent += 1
    }
    return "\(fixed(mantissa, decimals: 2))e\(exponent)"
  }

  private static func fixed(_ value: Double, decimals: Int) -> String {
    let scale = pow10(Double(decimals))
    let scaled = (abs(value) * scale).rounded()
    var digits = String(Int(scaled))
    if decimals > 0 {
      while digits.count <= decimals { digits = "0" + digits }
      digits.insert(".", at: digits.index(digits.endIndex, offsetBy: -decimals))
      while digits.hasSuffix("0") { digits.removeLast() }
      if digits.hasSuffix(".") { digits.removeLast() }
    }
    return (value < 0 && scaled != 0 ? "-" : "") + digits
  }

  private static func pow10(_ exponent: Double) -> Double {
    var result = 1.0
    let steps = Int(abs(exponent))
    for _ in 0..<min(steps, 330) { result *= 10 }
    return exponent < 0 ? 1 / result : result
  }

  /// `floor(log10(value))` for positive finite values, without Foundation: the binary exponent,
  /// refined against powers of ten.
  private static func decimalExponent(_ value: Double) -> Double {
    var estimate = (Double(value.exponent) * 0.30102999566398120).rounded(.down)
    while pow10(estimate) > value { estimate -= 1 }
    while pow10(estimate + 1) <= value { estimate += 1 }
    return estimate
  }

  private static func attribute(_ name: String, in text: Substring) -> Double? {
    guard let start = text.range(of: " \(name)=\"") else { return nil }
    let rest = text[start.upperBound...]
    guard let end = rest.firstIndex(of: "\"") else { return nil }
    return Double(rest[..<end])
  }
}

extension Substring {
  fileprivate func replacingOccurrences(of target: String, with replacement: String, maxCount: Int)
    -> String
  {
    guard maxCount > 0, let range = range(of: target) else { return String(self) }
    return String(self[..<range.lowerBound]) + replacement + String(self[range.upperBound...])
  }
}

extension String {
  fileprivate var trimmingTrailingWhitespace: String {
    var result = String(self)
    while let last = result.last, last.isWhitespace { result.removeLast() }
    return result
  }
}
