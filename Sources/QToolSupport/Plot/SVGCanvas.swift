/// A minimal SVG 1.1 document builder: elements appended as text, every attribute value and text
/// node escaped, coordinates rounded to hundredths so documents stay small and stable.
struct SVGCanvas {
  let width: Double
  let height: Double
  private(set) var body: [String] = []

  init(width: Double, height: Double) {
    self.width = width.rounded(.up)
    self.height = height.rounded(.up)
    body.append(rect(x: 0, y: 0, width: self.width, height: self.height, fill: "#ffffff"))
  }

  /// The complete document, XML declaration included.
  var document: String {
    let w = SVGCanvas.number(width)
    let h = SVGCanvas.number(height)
    return """
      <?xml version="1.0" encoding="UTF-8" standalone="no"?>
      <svg xmlns="http://www.w3.org/2000/svg" version="1.1" width="\(w)" height="\(h)" \
      viewBox="0 0 \(w) \(h)" font-family="Helvetica, Arial, sans-serif">
      \(body.joined(separator: "\n"))
      </svg>

      """
  }

  mutating func append(_ element: String) { body.append(element) }

  func rect(
    x: Double, y: Double, width: Double, height: Double, fill: String, stroke: String? = nil,
    strokeWidth: Double = 1, tooltip: String? = nil
  ) -> String {
    var attributes =
      "x=\"\(SVGCanvas.number(x))\" y=\"\(SVGCanvas.number(y))\" width=\"\(SVGCanvas.number(width))\" height=\"\(SVGCanvas.number(height))\" fill=\"\(fill)\""
    if let stroke {
      attributes += " stroke=\"\(stroke)\" stroke-width=\"\(SVGCanvas.number(strokeWidth))\""
    }
    if let tooltip { return "<rect \(attributes)><title>\(SVGCanvas.escape(tooltip))</title></rect>" }
    return "<rect \(attributes)/>"
  }

  mutating func addRect(
    x: Double, y: Double, width: Double, height: Double, fill: String, stroke: String? = nil,
    strokeWidth: Double = 1, tooltip: String? = nil
  ) {
    body.append(
      rect(
        x: x, y: y, width: width, height: height, fill: fill, stroke: stroke,
        strokeWidth: strokeWidth, tooltip: tooltip))
  }

  enum Anchor: String { case start, middle, end }

  mutating func addText(
    _ text: String, x: Double, y: Double, size: Double = 11, anchor: Anchor = .start,
    rotation: Double = 0, bold: Bool = false
  ) {
    var attributes =
      "x=\"\(SVGCanvas.number(x))\" y=\"\(SVGCanvas.number(y))\" font-size=\"\(SVGCanvas.number(size))\" text-anchor=\"\(anchor.rawValue)\""
    if bold { attributes += " font-weight=\"bold\"" }
    if rotation != 0 {
      attributes +=
        " transform=\"rotate(\(SVGCanvas.number(rotation)) \(SVGCanvas.number(x)) \(SVGCanvas.number(y)))\""
    }
    body.append("<text \(attributes)>\(SVGCanvas.escape(text))</text>")
  }

  mutating func addLine(
    x1: Double, y1: Double, x2: Double, y2: Double, stroke: String = "#333333", width: Double = 1
  ) {
    body.append(
      "<line x1=\"\(SVGCanvas.number(x1))\" y1=\"\(SVGCanvas.number(y1))\" x2=\"\(SVGCanvas.number(x2))\" y2=\"\(SVGCanvas.number(y2))\" stroke=\"\(stroke)\" stroke-width=\"\(SVGCanvas.number(width))\"/>"
    )
  }

  mutating func addPolyline(
    _ points: [(x: Double, y: Double)], stroke: String, width: Double, markerRadius: Double
  ) {
    guard !points.isEmpty else { return }
    let list = points.map { "\(SVGCanvas.number($0.x)),\(SVGCanvas.number($0.y))" }
      .joined(separator: " ")
    body.append(
      "<polyline points=\"\(list)\" fill=\"none\" stroke=\"\(stroke)\" stroke-width=\"\(SVGCanvas.number(width))\" stroke-linejoin=\"round\"/>"
    )
    for point in points {
      body.append(
        "<circle cx=\"\(SVGCanvas.number(point.x))\" cy=\"\(SVGCanvas.number(point.y))\" r=\"\(SVGCanvas.number(markerRadius))\" fill=\"\(stroke)\" stroke=\"#ffffff\" stroke-width=\"0.8\"/>"
      )
    }
  }

  /// A number for an attribute: hundredths, no exponent, no trailing ".0".
  static func number(_ value: Double) -> String {
    guard value.isFinite else { return "0" }
    let hundredths = (value * 100).rounded()
    let whole = Int(hundredths / 100)
    let fraction = Int(abs(hundredths).truncatingRemainder(dividingBy: 100))
    let sign = hundredths < 0 && whole == 0 ? "-" : ""
    if fraction == 0 { return "\(sign)\(whole)" }
    let digits = fraction % 10 == 0 ? "\(fraction / 10)" : (fraction < 10 ? "0\(fraction)" : "\(fraction)")
    return "\(sign)\(whole).\(digits)"
  }

  /// Text made safe for XML character data and attribute values.
  static func escape(_ text: String) -> String {
    var result = ""
    result.reserveCapacity(text.count)
    for scalar in text.unicodeScalars {
      switch scalar {
      case "&": result += "&amp;"
      case "<": result += "&lt;"
      case ">": result += "&gt;"
      case "\"": result += "&quot;"
      case "'": result += "&apos;"
      // Characters XML 1.0 forbids become U+FFFD.
      case "\t", "\n", "\r": result.unicodeScalars.append(scalar)
      case _ where scalar.value < 0x20 || scalar.value == 0xFFFE || scalar.value == 0xFFFF:
        result += "\u{FFFD}"
      default: result.unicodeScalars.append(scalar)
      }
    }
    return result
  }
}

/// A viridis-like colour scale: nine stops of matplotlib's viridis, linearly interpolated.
enum Viridis {
  private static let stops: [(Double, Double, Double)] = [
    (68, 1, 84), (72, 40, 120), (62, 74, 137), (49, 104, 142), (38, 130, 142),
    (31, 158, 137), (53, 183, 121), (109, 205, 89), (180, 222, 44), (253, 231, 37),
  ]

  /// The colour of `t` in [0, 1] (clamped) as `#rrggbb`; NaN is a neutral grey.
  static func color(_ t: Double) -> String {
    guard t.isFinite else { return "#bdbdbd" }
    let clamped = min(max(t, 0), 1) * Double(stops.count - 1)
    let low = min(Int(clamped), stops.count - 2)
    let f = clamped - Double(low)
    let (a, b) = (stops[low], stops[low + 1])
    return hex(a.0 + (b.0 - a.0) * f, a.1 + (b.1 - a.1) * f, a.2 + (b.2 - a.2) * f)
  }

  static func hex(_ r: Double, _ g: Double, _ b: Double) -> String {
    let digits = Array("0123456789abcdef")
    var result = "#"
    for channel in [r, g, b] {
      let value = Int(min(max(channel.rounded(), 0), 255))
      result.append(digits[value / 16])
      result.append(digits[value % 16])
    }
    return result
  }
}
