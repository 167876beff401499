/// The Hungarian algorithm (Kuhn–Munkres with potentials, shortest augmenting paths), O(n²m).
///
/// Rectangular problems are solved as if padded with zero columns or rows: every row of the
/// smaller side is assigned, the surplus of the larger side stays unassigned. This matches
/// `scipy.optimize.linear_sum_assignment` on the negated scores, as LoRASuite uses it for heads.
public enum Hungarian {
  /// The one-to-one assignment of rows to columns that maximises the summed scores.
  ///
  /// NaN and infinite scores are replaced by a value below every finite score, so they are chosen
  /// only when nothing else is left.
  /// - Returns: for each row, its column, or nil when there are more rows than columns and the
  ///   row is left over.
  public static func maximize(_ scores: Matrix<Double>) -> [Int?] {
    let finite = scores.elements.filter { $0.isFinite }
    let floor = (finite.min() ?? 0) - 1 - (finite.map { abs($0) }.max() ?? 0)
    var cost = scores
    cost.withUnsafeMutableBufferPointer { buffer in
      for index in buffer.indices {
        buffer[index] = buffer[index].isFinite ? -buffer[index] : -floor
      }
    }
    if scores.rows <= scores.columns { return minimize(cost) }
    let columnToRow = minimize(cost.transposed())
    var result = [Int?](repeating: nil, count: scores.rows)
    for (column, row) in columnToRow.enumerated() {
      if let row { result[row] = column }
    }
    return result
  }

  /// The maximising assignment's total score (0 for an empty matrix).
  public static func total(_ scores: Matrix<Double>, assignment: [Int?]) -> Double {
    assignment.enumerated().reduce(0) { sum, pair in
      pair.element.map { sum + scores[pair.offset, $0] } ?? sum
    }
  }

  /// Minimum-cost assignment for finite `cost` with rows ≤ columns; row → column for every row.
  private static func minimize(_ cost: Matrix<Double>) -> [Int?] {
    let n = cost.rows
    let m = cost.columns
    if n == 0 { return [] }
    // 1-based arrays; column 0 is the virtual start of each augmenting path.
    var u = [Double](repeating: 0, count: n + 1)
    var v = [Double](repeating: 0, count: m + 1)
    var rowOfColumn = [Int](repeating: 0, count: m + 1)
    var way = [Int](repeating: 0, count: m + 1)
    var minimum = [Double](repeating: 0, count: m + 1)
    var used = [Bool](repeating: false, count: m + 1)
    for row in 1...n {
      rowOfColumn[0] = row
      var column0 = 0
      for j in 0...m {
        minimum[j] = .infinity
        used[j] = false
      }
      repeat {
        used[column0] = true
        let row0 = rowOfColumn[column0]
        var delta = Double.infinity
        var column1 = 0
        for j in 1...m where !used[j] {
          let reduced = cost[row0 - 1, j - 1] - u[row0] - v[j]
          if reduced < minimum[j] {
            minimum[j] = reduced
            way[j] = column0
          }
          if minimum[j] < delta {
            delta = minimum[j]
            column1 = j
          }
        }
        // Finite costs and a free column always give a finite delta and a column.
        guard column1 != 0 else { break }
        for j in 0...m {
          if used[j] {
            u[rowOfColumn[j]] += delta
            v[j] -= delta
          } else {
            minimum[j] -= delta
          }
        }
        column0 = column1
      } while rowOfColumn[column0] != 0
      repeat {
        let column1 = way[column0]
        rowOfColumn[column0] = rowOfColumn[column1]
        column0 = column1
      } while column0 != 0
    }
    var result = [Int?](repeating: nil, count: n)
    for j in 1...m where rowOfColumn[j] != 0 { result[rowOfColumn[j] - 1] = j - 1 }
    return result
  }
}
