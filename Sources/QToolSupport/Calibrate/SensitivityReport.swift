import Foundation
import QCompute
import QEngine

/// How much quantizing each linear layer alone disturbs its output, at several candidate grids:
/// tr(ΔW H ΔWᵀ) / tr(W H Wᵀ) with H the calibration Gram matrix and ΔW the round-to-nearest error.
/// Also chooses one candidate per tensor for a bits-per-weight target.
public struct SensitivityReport: Sendable, Codable, Equatable {
  public struct Candidate: Sendable, Codable, Equatable {
    public var grid: String
    /// Storage per weight: codes plus 16-bit scales and offsets (4-bit second-level scales for bilevel).
    public var bitsPerWeight: Double
    enum CodingKeys: String, CodingKey {
      case grid
      case bitsPerWeight = "bits_per_weight"
    }
  }

  public struct Row: Sendable, Codable, Equatable {
    public var tensor: String
    public var component: String
    public var block: Int
    public var parameters: Int
    /// Relative output error at each candidate, in `candidates` order; `nil` (JSON null) where
    /// the grid does not fit the tensor's shape (a bilevel chunk longer than its scales).
    public var relativeErrors: [Double?]
    enum CodingKeys: String, CodingKey {
      case tensor, component, block, parameters
      case relativeErrors = "relative_errors"
    }
  }

  /// Per component (the language model, or a layer kind such as `mlp.down_proj`): the
  /// parameter-weighted mean of its rows' relative errors (`nil` where a grid fits none of them
  /// wholly).
  public struct ComponentRow: Sendable, Codable, Equatable {
    public var component: String
    public var parameters: Int
    public var relativeErrors: [Double?]
    enum CodingKeys: String, CodingKey {
      case component, parameters
      case relativeErrors = "relative_errors"
    }
  }

  public var candidates: [Candidate]
  public var rows: [Row]
  public var components: [ComponentRow]
  /// Grids kept in memory to answer `allocate`; not part of the JSON.
  var grids: [CalibratedGrid] = []

  enum CodingKeys: String, CodingKey { case candidates, rows, components }

  /// Storage bits per weight of `grid` on a matrix of `columns` inputs, with 16-bit scales.
  public static func bitsPerWeight(_ grid: CalibratedGrid, columns: Int) -> Double {
    let group = Double(max(grid.groupSize.length(columns: columns), 1))
    switch grid {
    case .affine(let bits, _): return Double(bits) + 32 / group
    case .symmetric(let bits, _): return Double(bits) + 16 / group
    case .bilevel(let configuration):
      // A 4-bit scale code and a b-bit zero per group; a 32-bit step and zero per chunk.
      return Double(configuration.bits) + Double(configuration.scaleBits + configuration.bits) / group
        + 64 / (group * Double(configuration.scaleGroupSize))
    }
  }

  /// The report for every q/k/v/o/gate/up/down weight of `model` that has a Gram matrix in
  /// `grams` (as `CalibrationCollector.collectGrams` returns them), at each of `candidates`; a
  /// fused weight (Phi-3's `qkv_proj`) is one row, as the pack stores it on one grid.
  /// - Parameter component: the component a tensor belongs to; the language model by default.
  /// - Throws: `CalibrateError.tensorFailed` when a candidate does not fit a tensor's shape.
  public static func compute(
    model: DecoderModel, grams: [String: Matrix<Double>], candidates: [CalibratedGrid],
    prefix: String = "", component: (String) -> String = { _ in "language_model" }
  ) throws -> SensitivityReport {
    var rows: [Row] = []
    var candidateRows: [Candidate] = []
    let linears = model.configuration.architecture.storedLinears
    for block in 0..<model.blockCount {
      for linear in linears {
        let name = linear.tensorName(block: block, prefix: prefix)
        guard let gram = grams[name] else { continue }
        let weight = try model.linearWeights(block: block, linear: linear)
        if candidateRows.isEmpty {
          candidateRows = candidates.map {
            Candidate(grid: $0.description, bitsPerWeight: bitsPerWeight($0, columns: weight.columns))
          }
        }
        var errors: [Double?] = []
        for grid in candidates {
          do {
            errors.append(
              try Sensitivity.relativeOutputError(
                weights: weight.values, rows: weight.rows, columns: weight.columns, hessian: gram, grid: grid))
          } catch .grid(.scaleCountNotDivisible) {
            errors.append(nil)
          } catch {
            throw CalibrateError.tensorFailed(tensor: name, reason: "\(grid): \(error)")
          }
        }
        rows.append(
          Row(
            tensor: name, component: component(name), block: block,
            parameters: weight.rows * weight.columns, relativeErrors: errors))
      }
    }
    var report = SensitivityReport(candidates: candidateRows, rows: rows, components: [])
    report.grids = candidates
    report.components = summarize(rows, by: \.component) + summarize(rows) { row in
      linears.first { row.tensor.hasSuffix($0.module + ".weight") }?.module ?? "other"
    }
    return report
  }

  static func summarize(_ rows: [Row], by key: (Row) -> String) -> [ComponentRow] {
    var order: [String] = []
    var table: [String: ComponentRow] = [:]
    for row in rows {
      let name = key(row)
      if table[name] == nil {
        order.append(name)
        table[name] = ComponentRow(
          component: name, parameters: 0,
          relativeErrors: [Double?](repeating: 0, count: row.relativeErrors.count))
      }
      table[name]?.parameters += row.parameters
      for (index, error) in row.relativeErrors.enumerated() {
        let sum = table[name]?.relativeErrors[index]
        table[name]?.relativeErrors[index] = sum.flatMap { sum in error.map { sum + $0 * Double(row.parameters) } }
      }
    }
    return order.compactMap { name in
      guard var entry = table[name] else { return nil }
      entry.relativeErrors = entry.relativeErrors.map { $0.map { $0 / Double(max(entry.parameters, 1)) } }
      return entry
    }
  }

  /// One candidate grid per tensor minimising the summed parameter-weighted relative error
  /// with at most `bitsPerWeight` on average over the reported tensors (those of `tensors` only,
  /// when given: a tensor kept in full precision takes no part in the budget).
  /// - Throws: `CalibrateError.unreachableTarget` when even the smallest candidates exceed it.
  public func allocate(bitsPerWeight target: Double, among tensors: Set<String>? = nil) throws
    -> [String: CalibratedGrid]
  {
    guard grids.count == candidates.count, !grids.isEmpty else {
      throw CalibrateError.unreachableTarget(bitsPerWeight: target, reason: "the report has no candidate grids")
    }
    let rows = tensors.map { names in self.rows.filter { names.contains($0.tensor) } } ?? self.rows
    let total = rows.reduce(0) { $0 + $1.parameters }
    // Costs in 1/64 bit per weight units keep the fractional overheads of small groups exact enough.
    let options = rows.map { row in
      zip(candidates, row.relativeErrors).map { candidate, error in
        // A grid that does not fit the tensor is never the cheaper way to a lower error.
        BitAllocation.Option(
          bits: Int((candidate.bitsPerWeight * 64).rounded(.up)) * row.parameters,
          error: error.map { $0 * Double(row.parameters) } ?? .infinity)
      }
    }
    let choice: [Int]
    do {
      choice = try BitAllocation.choose(options, budgetBits: Int((target * 64).rounded(.down)) * total)
    } catch {
      throw CalibrateError.unreachableTarget(bitsPerWeight: target, reason: "\(error)")
    }
    var result: [String: CalibratedGrid] = [:]
    for (row, index) in zip(rows, choice) { result[row.tensor] = grids[index] }
    return result
  }

  /// The rows as a table: one line per tensor, one column per candidate, then the components.
  public func renderTable() -> String {
    func cells(_ errors: [Double?]) -> [String] { errors.map { $0.map { String(format: "%.3e", $0) } ?? "-" } }
    let headers = ["tensor", "parameters"] + candidates.map { "\($0.grid) (\(String(format: "%.2f", $0.bitsPerWeight)) bpw)" }
    let alignments: [TextTable.Alignment] = [.left] + Array(repeating: .right, count: headers.count - 1)
    var table = TextTable(headers: headers, alignments: alignments)
    for row in rows { table.append([row.tensor, String(row.parameters)] + cells(row.relativeErrors)) }
    var components = TextTable(headers: ["component"] + headers.dropFirst(), alignments: alignments)
    for row in self.components { components.append([row.component, String(row.parameters)] + cells(row.relativeErrors)) }
    return table.render() + "\n" + components.render()
  }

  /// The report as pretty JSON with sorted keys.
  public func jsonData() throws -> Data {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
    return try encoder.encode(self)
  }
}
