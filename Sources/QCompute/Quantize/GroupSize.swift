/// How many consecutive elements of a row share one scale: a fixed count, or the whole row.
public enum GroupSize: Sendable, Hashable, ExpressibleByIntegerLiteral, CustomStringConvertible {
  case elements(Int)
  case perChannel

  public init(integerLiteral value: Int) { self = .elements(value) }

  /// The group length for rows of `columns` elements.
  public func length(columns: Int) -> Int {
    switch self {
    case .elements(let count): count
    case .perChannel: columns
    }
  }

  public var description: String {
    switch self {
    case .elements(let count): "g\(count)"
    case .perChannel: "per-channel"
    }
  }
}

/// Checks shared by every grouped quantizer; returns the group length.
func validatedGroupLength(
  quantizer: String, count: Int, rows: Int, columns: Int, bits: Int, allowedBits: Set<Int>,
  groupSize: GroupSize, allowedGroups: Set<Int> = [16, 32, 64, 128]
) throws(QuantizeError) -> Int {
  guard allowedBits.contains(bits) else {
    throw .unsupportedBits(quantizer: quantizer, bits: bits)
  }
  guard rows >= 0, columns >= 0, rows.multipliedReportingOverflow(by: columns).partialValue == count,
    !rows.multipliedReportingOverflow(by: columns).overflow
  else {
    throw .elementCountMismatch(quantizer: quantizer, expected: rows &* columns, actual: count)
  }
  let length = groupSize.length(columns: columns)
  if case .elements(let size) = groupSize, !allowedGroups.contains(size) {
    throw .unsupportedGroupSize(quantizer: quantizer, groupSize: size)
  }
  if length == 0 { return 0 }
  guard columns % length == 0 else {
    throw .columnsNotDivisible(quantizer: quantizer, columns: columns, by: length)
  }
  return length
}
