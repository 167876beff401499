/// GPTQ (Frantar et al., 2022): quantize a linear layer's weight column by column, spreading each
/// column's rounding error over the columns not yet quantized so that the output error
/// ‖(W - Q) X‖² under the calibration Hessian H = Xᵀ X stays small.
///
/// The steps follow AutoGPTQ's `gptq.py`: dead inputs (H_ii = 0) get weight 0 and H_ii = 1;
/// optional act-order permutes columns by descending H_ii; H gets `dampingFraction * mean(diag H)`
/// on its diagonal; the upper Cholesky factor U of H⁻¹ drives the updates, applied inside blocks
/// of `blockSize` columns and to the rest of the matrix once per block (lazy batch updates).
///
/// Group parameters: without act-order a group's scale and offset are fixed when GPTQ reaches its
/// first column, from the weights as updated so far. (AutoGPTQ reads its block-start copy there,
/// so its parameters depend on the block size; reading the updated weights makes the block size
/// a speed setting only.) With act-order the packs still group consecutive columns, so groups are
/// "static", as GPTQModel's `static_groups`: every group's parameters come from the original
/// column order before any update, and each column uses its own group's parameters wherever the
/// permutation puts it. (The alternative, GPTQModel's `g_idx`, groups columns in permuted order
/// and cannot be stored as consecutive groups.) The bilevel grid fixes all first-level scales of a
/// group index together and quantizes them at once in chunks of G consecutive output channels,
/// which needs `rows` to be a multiple of G.
///
/// Grid arithmetic runs in `Float` on the current weights rounded to `Float`, exactly as the
/// grid's round-to-nearest quantizer does, so `dequantize()` reproduces the values GPTQ used;
/// the error propagation runs in `Double`.
public enum GPTQ {
  public struct Options: Sendable, Hashable {
    /// Fraction of the mean Hessian diagonal added to the diagonal (AutoGPTQ's `percdamp`).
    public var dampingFraction: Double
    /// Quantize columns in order of descending Hessian diagonal, with static groups.
    public var actOrder: Bool
    /// Columns per lazy batch update.
    public var blockSize: Int

    public init(dampingFraction: Double = 0.01, actOrder: Bool = false, blockSize: Int = 128) {
      self.dampingFraction = dampingFraction
      self.actOrder = actOrder
      self.blockSize = blockSize
    }
  }

  public struct Result: Sendable {
    public var quantized: QuantizedMatrix
    /// GPTQ's loss per output row, ½ Σᵢ (wᵢ - qᵢ)² / Uᵢᵢ², which equals
    /// ½ (W - Q) H' (W - Q)ᵀ for the damped Hessian H' (dead columns' weights taken as 0).
    public var rowLosses: [Double]

    public var totalLoss: Double { rowLosses.reduce(0, +) }
  }

  /// GPTQ on `[rows, columns]` row-major `weights` with `hessian` (`columns` × `columns`).
  /// - Throws: `CalibrationError` for a Hessian of the wrong shape, options out of range, a grid
  ///   that rejects the shape, or a Hessian that stays singular after damping.
  public static func quantize<Scalar: LinalgScalar>(
    _ weights: [Float], rows: Int, columns: Int, hessian: Matrix<Scalar>, grid: CalibratedGrid,
    options: Options = Options()
  ) throws(CalibrationError) -> Result {
    try weights.withUnsafeBufferPointer { (buffer) throws(CalibrationError) -> Result in
      try quantize(
        buffer, rows: rows, columns: columns, hessian: hessian, grid: grid, options: options)
    }
  }

  /// GPTQ on a weight buffer; see `quantize(_:rows:columns:hessian:grid:options:)`.
  public static func quantize<Scalar: LinalgScalar>(
    _ weights: UnsafeBufferPointer<Float>, rows: Int, columns: Int, hessian: Matrix<Scalar>,
    grid: CalibratedGrid, options: Options = Options()
  ) throws(CalibrationError) -> Result {
    let operation = "GPTQ"
    let length: Int
    do {
      length = try grid.validatedGroupLength(rows: rows, columns: columns, operation: operation)
    } catch { throw .grid(error) }
    try checkInputs(
      weightCount: weights.count, rows: rows, columns: columns, hessian: hessian, options: options,
      operation: operation)
    if rows == 0 || columns == 0 {
      do {
        let empty = try grid.roundToNearest(weights, rows: rows, columns: columns)
        return Result(quantized: empty, rowLosses: [Double](repeating: 0, count: rows))
      } catch { throw .grid(error) }
    }
    var state = GPTQState(
      weights: weights, rows: rows, columns: columns, hessian: hessian, grid: grid,
      groupLength: length)
    try state.run(options: options)
    return state.result()
  }
}

extension GPTQ {
  /// GPTQ onto a layout's stored grid: every group's step and offset are the grid's (fixed from
  /// the original weights, as the layout's own quantizer chose them), and GPTQ decides only the
  /// codes, each the nearest on the stored grid to the weight as updated so far, with the
  /// runtime's own value of that code fed back as the error. With act-order the groups are
  /// static by construction.
  ///
  /// - Returns: the codes, row-major, and GPTQ's loss per row.
  /// - Throws: `CalibrationError` for a weight or Hessian whose shape is not the grid's, options
  ///   out of range, or a Hessian that stays singular after damping.
  public static func quantize<Scalar: LinalgScalar>(
    _ weights: UnsafeBufferPointer<Float>, hessian: Matrix<Scalar>, onto grid: StoredGrid,
    options: Options = Options()
  ) throws(CalibrationError) -> (codes: StoredCodes, rowLosses: [Double]) {
    let operation = "GPTQ"
    let (rows, columns) = (grid.rows, grid.columns)
    try checkInputs(
      weightCount: weights.count, rows: rows, columns: columns, hessian: hessian, options: options,
      operation: operation)
    if rows == 0 || columns == 0 {
      return (StoredCodes(grid: grid, codes: []), [Double](repeating: 0, count: rows))
    }
    // The calibrated grid only sizes the state; the stored grid decides every code.
    var state = GPTQState(
      weights: weights, rows: rows, columns: columns, hessian: hessian,
      grid: .affine(bits: grid.bits, groupSize: .elements(grid.groupLength)), groupLength: grid.groupLength)
    state.stored = grid
    try state.run(options: options)
    return (StoredCodes(grid: grid, codes: state.codes), state.rowLosses)
  }
}

extension GPTQ {
  /// A layout's grid for one group of columns, `[rows, columns]` row-major weights as GPTQ has
  /// updated them when it reaches the group's first column (`firstColumn` of the matrix).
  public typealias GroupGridMaker = (
    _ weights: UnsafeBufferPointer<Float>, _ rows: Int, _ columns: Int, _ firstColumn: Int
  ) throws -> StoredGrid

  /// GPTQ onto a layout's grid chosen a group at a time, as GPTQ without act-order chooses its
  /// own: each group's stored step and offset come from `makeGroup` on the weights as updated
  /// when GPTQ reaches it, so the grid fits the weights it will round rather than the original
  /// ones. Codes are decided as in `quantize(_:hessian:onto:options:)`.
  ///
  /// - Returns: the codes on the grid the groups make together, and GPTQ's loss per row.
  /// - Throws: `CalibrationError` for act-order (whose static groups need the grid up front),
  ///   a shape that is not whole groups, a group grid of another shape or arithmetic, or a
  ///   Hessian that stays singular after damping.
  public static func quantize<Scalar: LinalgScalar>(
    _ weights: UnsafeBufferPointer<Float>, rows: Int, columns: Int, hessian: Matrix<Scalar>, groupLength: Int,
    regridding makeGroup: @escaping GroupGridMaker, options: Options = Options()
  ) throws(CalibrationError) -> (codes: StoredCodes, rowLosses: [Double]) {
    let operation = "GPTQ"
    guard !options.actOrder else {
      throw .invalidOption(operation: operation, detail: "act-order needs the whole grid before the first column")
    }
    guard groupLength > 0, columns % groupLength == 0 else {
      throw .grid(.columnsNotDivisible(quantizer: operation, columns: columns, by: groupLength))
    }
    try checkInputs(
      weightCount: weights.count, rows: rows, columns: columns, hessian: hessian, options: options,
      operation: operation)
    var state = GPTQState(
      weights: weights, rows: rows, columns: columns, hessian: hessian,
      grid: .affine(bits: 8, groupSize: .elements(groupLength)), groupLength: groupLength)
    state.makeGroup = makeGroup
    if rows > 0 && columns > 0 { try state.run(options: options) }
    guard let arithmetic = state.stored else {
      // No group was made (an empty matrix): any grid of the shape holds no codes.
      do {
        let empty = try StoredGrid(
          rows: rows, columns: columns, groupLength: groupLength, bits: 8, arithmetic: .ggmlMinimum,
          scales: [Float](repeating: 0, count: rows * (columns / groupLength)),
          offsets: [Float](repeating: 0, count: rows * (columns / groupLength)))
        return (StoredCodes(grid: empty, codes: []), state.rowLosses)
      } catch { throw .grid(error) }
    }
    do {
      let grid = try StoredGrid(
        rows: rows, columns: columns, groupLength: groupLength, bits: arithmetic.bits,
        arithmetic: arithmetic.arithmetic, scales: state.scales, offsets: state.offsets)
      return (StoredCodes(grid: grid, codes: state.codes), state.rowLosses)
    } catch { throw .grid(error) }
  }
}

/// The working copies GPTQ updates: the weight transposed so a column is contiguous, the Hessian,
/// and the outputs in the original column order.
struct GPTQState {
  let rows: Int
  let columns: Int
  let grid: CalibratedGrid
  let groupLength: Int
  let groupsPerRow: Int
  let levels: Float
  /// Wᵀ, [columns, rows]: column c of the weight is `transposed[c * rows ..< (c + 1) * rows]`.
  var transposed: [Double]
  var hessian: [Double]

  var codes: [UInt8]
  var scales: [Float]
  var offsets: [Float]
  var unquantizedScales: [Float]
  var scaleCodes: [UInt8]
  var chunkScales: [Float]
  var chunkZeros: [Float]
  var rowLosses: [Double]
  /// A layout's stored grid: when set, it gives every group's parameters and every code.
  var stored: StoredGrid?
  /// A layout's grid made a group at a time (`GPTQ.GroupGridMaker`): each group's grid
  /// becomes `stored` when GPTQ reaches the group.
  var makeGroup: GPTQ.GroupGridMaker?

  init<Scalar: LinalgScalar>(
    weights: UnsafeBufferPointer<Float>, rows: Int, columns: Int, hessian: Matrix<Scalar>,
    grid: CalibratedGrid, groupLength: Int
  ) {
    self.rows = rows
    self.columns = columns
    self.grid = grid
    self.groupLength = groupLength
    self.groupsPerRow = columns / groupLength
    self.levels = Float((1 << grid.bits) - 1)
    var transposed = [Double](repeating: 0, count: rows * columns)
    for row in 0..<rows {
      for column in 0..<columns {
        transposed[column &* rows &+ row] = Double(weights[row &* columns &+ column])
      }
    }
    self.transposed = transposed
    self.hessian = hessian.elements.map { Double($0) }
    let groupCount = rows * groupsPerRow
    codes = [UInt8](repeating: 0, count: rows * columns)
    scales = [Float](repeating: 0, count: groupCount)
    offsets = [Float](repeating: 0, count: groupCount)
    if case .bilevel(let configuration) = grid {
      unquantizedScales = [Float](repeating: 0, count: groupCount)
      scaleCodes = [UInt8](repeating: 0, count: groupCount)
      chunkScales = [Float](repeating: 0, count: groupCount / configuration.scaleGroupSize)
      chunkZeros = chunkScales
    } else {
      unquantizedScales = []
      scaleCodes = []
      chunkScales = []
      chunkZeros = []
    }
    rowLosses = [Double](repeating: 0, count: rows)
  }

  mutating func run(options: GPTQ.Options) throws(CalibrationError) {
    let n = columns
    // Dead inputs: never active, so their weights are free; zero them and make H invertible.
    for i in 0..<n where hessian[i &* n &+ i] == 0 {
      hessian[i &* n &+ i] = 1
      for row in 0..<rows { transposed[i &* rows &+ row] = 0 }
    }

    var order = Array(0..<n)
    var staticGroups: [GroupColumnParameters] = []
    if options.actOrder {
      for group in 0..<groupsPerRow {
        let parameters = groupParameters(startingAt: group * groupLength)
        store(parameters, group: group)
        staticGroups.append(parameters)
      }
      let diagonal = (0..<n).map { hessian[$0 &* n &+ $0] }
      order.sort { diagonal[$0] > diagonal[$1] || (diagonal[$0] == diagonal[$1] && $0 < $1) }
      permute(order)
    }

    var diagonalSum = 0.0
    for i in 0..<n { diagonalSum += hessian[i &* n &+ i] }
    let damping = options.dampingFraction * diagonalSum / Double(n)
    for i in 0..<n { hessian[i &* n &+ i] += damping }

    let upper: [Double]
    do throws(ComputeError) {
      let inverse = try Matrix<Double>(rows: n, columns: n, storage: hessian).inverseSPD()
      upper = try inverse.cholesky().transposed().elements
    } catch {
      if case .notPositiveDefinite = error {
        throw .hessianNotPositiveDefinite(
          operation: "GPTQ", dampingFraction: options.dampingFraction)
      }
      throw .compute(error)
    }
    hessian = []

    let block = effectiveBlockSize(options.blockSize)
    var current = GroupColumnParameters(scales: [], offsets: [])
    var blockErrors = [Double](repeating: 0, count: block * rows)
    var blockStart = 0
    while blockStart < n {
      let blockEnd = min(blockStart + block, n)
      for i in blockStart..<blockEnd {
        let column = order[i]
        if options.actOrder {
          if i == blockStart || column / groupLength != order[i - 1] / groupLength {
            current = staticGroups[column / groupLength]
          }
        } else if column % groupLength == 0 {
          if makeGroup != nil { try regrid(startingAt: column) }
          current = groupParameters(startingAt: column)
          store(current, group: column / groupLength)
        }
        quantizeColumn(
          i, originalColumn: column, parameters: current, upper: upper, blockEnd: blockEnd,
          errors: &blockErrors, errorRow: i - blockStart)
      }
      if blockEnd < n {
        try applyBlockErrors(
          upper: upper, blockStart: blockStart, blockEnd: blockEnd, errors: blockErrors)
      }
      blockStart = blockEnd
    }
  }

  /// With group starts on block starts or inside one block, a group's first column sees every
  /// column of the group fully updated.
  func effectiveBlockSize(_ requested: Int) -> Int {
    if groupLength == columns { return requested }
    if groupLength <= requested { return requested / groupLength * groupLength }
    if groupLength % requested == 0 { return requested }
    var (a, b) = (groupLength, requested)
    while b != 0 { (a, b) = (b, a % b) }
    return a
  }

  /// The current weights of the group starting at column `start`, `[rows, groupLength]`.
  func gatheredGroup(startingAt start: Int) -> [Float] {
    var gathered = [Float](repeating: 0, count: rows * groupLength)
    for t in 0..<groupLength {
      let base = (start &+ t) &* rows
      for row in 0..<rows { gathered[row &* groupLength &+ t] = Float(transposed[base &+ row]) }
    }
    return gathered
  }

  /// Makes the grid of the group starting at column `start` from its current weights; it is
  /// `stored` (one group per row) until the next group's.
  mutating func regrid(startingAt start: Int) throws(CalibrationError) {
    guard let makeGroup else { return }
    let gathered = gatheredGroup(startingAt: start)
    let grid: StoredGrid
    do {
      grid = try gathered.withUnsafeBufferPointer { try makeGroup($0, rows, groupLength, start) }
    } catch let error as QuantizeError {
      throw .grid(error)
    } catch {
      throw .invalidOption(operation: "GPTQ", detail: "the grid of columns \(start)..<\(start + groupLength): \(error)")
    }
    guard grid.rows == rows, grid.columns == groupLength, grid.groupLength == groupLength,
      stored.map({ $0.arithmetic == grid.arithmetic && $0.bits == grid.bits }) ?? true
    else {
      throw .invalidOption(
        operation: "GPTQ",
        detail: "the grid made for columns \(start)..<\(start + groupLength) is [\(grid.rows), \(grid.columns)] in groups of \(grid.groupLength), not one group of [\(rows), \(groupLength)] in the first group's arithmetic")
    }
    stored = grid
  }

  /// Parameters of the group index starting at original column `start`, from the current weights.
  func groupParameters(startingAt start: Int) -> GroupColumnParameters {
    if let stored {
      // A grid made for this group alone holds one group per row.
      let group = makeGroup != nil ? 0 : start / groupLength
      let perRow = stored.groupsPerRow
      let indices = (0..<rows).map { $0 &* perRow &+ group }
      return GroupColumnParameters(scales: indices.map { stored.scales[$0] }, offsets: indices.map { stored.offsets[$0] })
    }
    return gatheredGroup(startingAt: start).withUnsafeBufferPointer {
      grid.groupParameters($0, rows: rows, length: groupLength)
    }
  }

  mutating func store(_ parameters: GroupColumnParameters, group: Int) {
    for row in 0..<rows {
      scales[row &* groupsPerRow &+ group] = parameters.scales[row]
      offsets[row &* groupsPerRow &+ group] = parameters.offsets[row]
    }
    guard case .bilevel(let configuration) = grid else { return }
    let chunksPerGroup = rows / configuration.scaleGroupSize
    for row in 0..<rows {
      unquantizedScales[row &* groupsPerRow &+ group] = parameters.unquantizedScales[row]
      scaleCodes[group &* rows &+ row] = parameters.scaleCodes[row]
    }
    for chunk in 0..<chunksPerGroup {
      chunkScales[group &* chunksPerGroup &+ chunk] = parameters.chunkScales[chunk]
      chunkZeros[group &* chunksPerGroup &+ chunk] = parameters.chunkZeros[chunk]
    }
  }

  /// Permutes the columns of W and both axes of H by `order` (new position -> old column).
  mutating func permute(_ order: [Int]) {
    let n = columns
    var weights = [Double](repeating: 0, count: transposed.count)
    var permuted = [Double](repeating: 0, count: hessian.count)
    for (new, old) in order.enumerated() {
      for row in 0..<rows { weights[new &* rows &+ row] = transposed[old &* rows &+ row] }
      for (newColumn, oldColumn) in order.enumerated() {
        permuted[new &* n &+ newColumn] = hessian[old &* n &+ oldColumn]
      }
    }
    transposed = weights
    hessian = permuted
  }

  /// Quantizes permuted column `i` and spreads its error over the rest of the block.
  mutating func quantizeColumn(
    _ i: Int, originalColumn: Int, parameters: GroupColumnParameters, upper: [Double],
    blockEnd: Int, errors: inout [Double], errorRow: Int
  ) {
    let n = columns
    let rows = self.rows
    let diagonal = upper[i &* n &+ i]
    let grid = self.grid
    let levels = self.levels
    let stored = self.stored
    transposed.withUnsafeMutableBufferPointer { weights in
      codes.withUnsafeMutableBufferPointer { codes in
        errors.withUnsafeMutableBufferPointer { errors in
          rowLosses.withUnsafeMutableBufferPointer { losses in
            let column = i &* rows
            let errorBase = errorRow &* rows
            for row in 0..<rows {
              let weight = weights[column &+ row]
              let scale = parameters.scales[row]
              let offset = parameters.offsets[row]
              let code: UInt8
              let restored: Float
              if let stored {
                code = stored.nearestCode(Float(weight), scale: scale, offset: offset)
                restored = stored.value(Int(code), scale: scale, offset: offset)
              } else {
                code = grid.code(Float(weight), scale: scale, offset: offset, levels: levels)
                restored = grid.restore(code, scale: scale, offset: offset)
              }
              codes[row &* n &+ originalColumn] = code
              let difference = weight - Double(restored)
              losses[row] += difference * difference / (diagonal * diagonal) / 2
              errors[errorBase &+ row] = difference / diagonal
            }
            for k in (i &+ 1)..<max(i &+ 1, blockEnd) {
              let factor = upper[i &* n &+ k]
              if factor == 0 { continue }
              let target = k &* rows
              for row in 0..<rows {
                weights[target &+ row] -= factor * errors[errorBase &+ row]
              }
            }
          }
        }
      }
    }
  }

  /// W[:, blockEnd...] -= E U[blockStart..<blockEnd, blockEnd...], in the transposed layout.
  mutating func applyBlockErrors(
    upper: [Double], blockStart: Int, blockEnd: Int, errors: [Double]
  ) throws(CalibrationError) {
    let n = columns
    let count = blockEnd - blockStart
    let rest = n - blockEnd
    var panel = [Double](repeating: 0, count: count * rest)
    for r in 0..<count {
      for c in 0..<rest { panel[r &* rest &+ c] = upper[(blockStart &+ r) &* n &+ blockEnd &+ c] }
    }
    let rows = self.rows
    do {
      try panel.withUnsafeBufferPointer { (panel) throws(ComputeError) in
        try errors.withUnsafeBufferPointer { (errors) throws(ComputeError) in
          try transposed.withUnsafeMutableBufferPointer { (weights) throws(ComputeError) in
            let tail = UnsafeMutableBufferPointer(rebasing: weights[(blockEnd * rows)...])
            let used = UnsafeBufferPointer(rebasing: errors[0..<(count * rows)])
            try Linalg.gemm(
              panel, rows: count, columns: rest, transposeA: true, used, rows: count,
              columns: rows, into: tail, alpha: -1, beta: 1)
          }
        }
      }
    } catch { throw .compute(error) }
  }

  func result() -> GPTQ.Result {
    var secondLevel: QuantizedMatrix.SecondLevel?
    if case .bilevel(let configuration) = grid {
      secondLevel = .init(
        bits: configuration.scaleBits, chunkSize: configuration.scaleGroupSize, codes: scaleCodes,
        chunkScales: chunkScales, chunkZeros: chunkZeros, unquantizedScales: unquantizedScales)
    }
    let groupSize: GroupSize =
      if case .bilevel = grid { .elements(groupLength) } else { grid.groupSize }
    let quantized = QuantizedMatrix(
      method: grid.method, bits: grid.bits, groupSize: groupSize, rows: rows, columns: columns,
      codes: codes, scales: scales, offsets: offsets, secondLevel: secondLevel)
    return GPTQ.Result(quantized: quantized, rowLosses: rowLosses)
  }
}

extension GPTQ {
  /// The checks both forms of GPTQ make before any work: the weight's element count, the
  /// Hessian's shape and the options' ranges.
  static func checkInputs<Scalar: LinalgScalar>(
    weightCount: Int, rows: Int, columns: Int, hessian: Matrix<Scalar>, options: Options, operation: String
  ) throws(CalibrationError) {
    guard weightCount == rows &* columns else {
      throw .grid(.elementCountMismatch(quantizer: operation, expected: rows &* columns, actual: weightCount))
    }
    guard hessian.rows == columns, hessian.columns == columns else {
      throw .hessianShapeMismatch(
        operation: operation, rows: hessian.rows, columns: hessian.columns, weightColumns: columns)
    }
    guard options.dampingFraction >= 0, options.dampingFraction.isFinite else {
      throw .invalidOption(operation: operation, detail: "damping \(options.dampingFraction) is negative")
    }
    guard options.blockSize > 0 else {
      throw .invalidOption(operation: operation, detail: "block size \(options.blockSize) is not positive")
    }
  }
}
