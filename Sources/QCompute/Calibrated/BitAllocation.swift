/// Chooses one setting per tensor (bits, grid) to minimise the summed error under a bit budget.
///
/// This is a multiple-choice knapsack; it is solved exactly by dynamic programming over the
/// budget in units of the greatest common divisor of all costs. When that would take more than
/// `maximumStates` budget steps, costs are rounded up to a coarser unit, which keeps the choice
/// within budget at the price of possibly missing the optimum by less than one unit per tensor.
public enum BitAllocation {
  /// One way to store a tensor: its total storage in bits (codes plus scales) and its error.
  public struct Option: Sendable, Hashable {
    public var bits: Int
    public var error: Double

    public init(bits: Int, error: Double) {
      self.bits = bits
      self.error = error
    }
  }

  /// The index of the chosen option of each tensor.
  /// - Parameters:
  ///   - tensors: the options of each tensor, at least one each, costs not negative.
  ///   - budgetBits: the total storage allowed, e.g. target bits per weight × total weights.
  /// - Throws: `CalibrationError.budgetTooSmall` when even the cheapest choices do not fit,
  ///   `.invalidOption` for a tensor without options or a negative cost.
  public static func choose(
    _ tensors: [[Option]], budgetBits: Int, maximumStates: Int = 1 << 18
  ) throws(CalibrationError) -> [Int] {
    let operation = "BitAllocation"
    var minimum = 0
    var unit = budgetBits
    for (index, options) in tensors.enumerated() {
      guard !options.isEmpty, options.count <= 255 else {
        throw .invalidOption(
          operation: operation, detail: "tensor \(index) has \(options.count) options")
      }
      guard let cheapest = options.map(\.bits).min(), cheapest >= 0 else {
        throw .invalidOption(operation: operation, detail: "tensor \(index) has a negative cost")
      }
      minimum += cheapest
      for option in options { unit = greatestCommonDivisor(unit, option.bits) }
    }
    guard budgetBits >= minimum else {
      throw .budgetTooSmall(budgetBits: budgetBits, minimumBits: minimum)
    }
    if tensors.isEmpty { return [] }
    if unit == 0 { unit = 1 }
    if budgetBits / unit > maximumStates { unit = (budgetBits + maximumStates - 1) / maximumStates }
    let capacity = budgetBits / unit
    let costs = tensors.map { $0.map { ($0.bits + unit - 1) / unit } }

    // best[c]: least error of the tensors so far within c units; choices[t][c]: tensor t's option.
    var best = [Double](repeating: 0, count: capacity + 1)
    var choices = [[UInt8]]()
    choices.reserveCapacity(tensors.count)
    for (t, options) in tensors.enumerated() {
      var next = [Double](repeating: .infinity, count: capacity + 1)
      var choice = [UInt8](repeating: 0, count: capacity + 1)
      for (o, option) in options.enumerated() {
        let cost = costs[t][o]
        if cost > capacity { continue }
        for c in cost...capacity {
          let candidate = best[c - cost] + option.error
          if candidate < next[c] {
            next[c] = candidate
            choice[c] = UInt8(o)
          }
        }
      }
      best = next
      choices.append(choice)
    }
    guard best[capacity].isFinite else {
      throw .budgetTooSmall(budgetBits: budgetBits, minimumBits: minimum)
    }
    var result = [Int](repeating: 0, count: tensors.count)
    var remaining = capacity
    for t in stride(from: tensors.count - 1, through: 0, by: -1) {
      let o = Int(choices[t][remaining])
      result[t] = o
      remaining -= costs[t][o]
    }
    return result
  }

  static func greatestCommonDivisor(_ a: Int, _ b: Int) -> Int {
    var (a, b) = (abs(a), abs(b))
    while b != 0 { (a, b) = (b, a % b) }
    return a
  }
}
